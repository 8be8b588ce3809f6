"""Clocks and the interleaved rounds that time the contenders of one case.

Each round runs every contender in turn, so that a burst of load from other users of the
machine hits all of them alike. Within a round a contender runs ``block`` (fwd, f+b) pairs back
to back and the first pair is not recorded: it absorbs the previous contender's still-spinning
BLAS / OpenMP threads, which slowed the next library's calls by up to 1.6x when interleaved
call by call (see docs/performance.md). The slow reference runs one recorded pair per round,
in its first ``ref_repeats`` rounds only.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .contenders import Contender

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class TimingOptions:
    repeats: int = 5          # interleaved rounds per measurement
    block: int = 3            # (fwd, f+b) pairs per contender per round, the first not recorded
    ref_repeats: int = 3      # rounds in which the slow reference runs
    warmup: int = 2           # untimed (fwd, f+b) pairs per contender first (not the reference)
    clock: str = "wall"       # "wall": perf_counter; "cpu": process CPU time

    @property
    def now(self) -> Callable[[], float]:
        return CLOCKS[self.clock]


def sample_times(fn: Callable[[], object], warmup: int, repeats: int,
                 clock: Callable[[], float] = time.perf_counter) -> list:
    """``repeats`` timings of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def median_of(fn: Callable[[], object], warmup: int, repeats: int,
              clock: Callable[[], float] = time.perf_counter) -> float:
    return statistics.median(sample_times(fn, warmup, repeats, clock))


def time_rounds(contenders: Sequence[Contender], opts: TimingOptions) -> dict:
    """{name: (forward times, f+b times)} over ``opts.repeats`` interleaved rounds."""
    now = opts.now
    for c in contenders:                  # warm-up (the reference was warmed by its check)
        for _ in range(opts.warmup if c.name != "ref" else 0):
            c.fwd()
            c.fb()
    samples = {c.name: ([], []) for c in contenders}
    for rnd in range(opts.repeats):
        for c in contenders:
            if c.name == "ref" and rnd >= opts.ref_repeats:
                continue
            block = 1 if c.name == "ref" else opts.block
            for rep in range(block):
                t0 = now()
                c.fwd()
                t1 = now()
                c.fb()
                t2 = now()
                if rep > 0 or block == 1:
                    samples[c.name][0].append(t1 - t0)
                    samples[c.name][1].append(t2 - t1)
    return samples


def summarize(samples: dict) -> dict:
    """Row fields per contender (``<name>_fwd_s``, ``<name>_fb_s``: medians; ``<name>_fb_min_s``)
    and, with PyTorch timed, npnet / PyTorch ratios."""
    row = {}
    for name, (fwd, fb) in samples.items():
        row[f"{name}_fwd_s"] = statistics.median(fwd)
        row[f"{name}_fb_s"] = statistics.median(fb)
        row[f"{name}_fb_min_s"] = min(fb)
    if "torch" in samples:
        row["ratio_fwd"] = row["npnet_fwd_s"] / row["torch_fwd_s"]
        row["ratio_fb"] = row["npnet_fb_s"] / row["torch_fb_s"]
        row["ratio_fb_of_min"] = row["npnet_fb_min_s"] / row["torch_fb_min_s"]
    return row
