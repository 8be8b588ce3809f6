"""The report: the markdown tables, the verdicts against the performance targets, the JSON file.

Targets (docs/performance.md): the forward+backward time ratio npnet / PyTorch per cell, dtype
and configuration, and on B and C a share of the measured GEMM peak.
"""
from __future__ import annotations

import json
from typing import Optional

from .spec import CELLS, LABEL, flops

PEAK_TARGET = {"B": 0.75, "C": 0.75}     # fraction of the measured GEMM peak (fwd+bwd GFLOP/s)


def target_ratio(cell: str, dtype: str, cfg: str) -> float:
    """The bound on the f+b ratio npnet / PyTorch for (cell, dtype, configuration)."""
    if cell == "lstm" and dtype == "float32":
        return {"A": 2.0, "B": 1.25, "C": 1.25, "D": 3.0}.get(cfg, 1.25)   # E (char-LM layer): as B
    if cell == "lstm" and dtype == "float64":
        return 0.6
    return 1.0


def fmt_ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.2f}" if v < 10 else f"{v * 1e3:.0f}"


def md_row(cells: list) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(cells) + " |"


def table_markdown(rows: list, peaks: dict) -> str:
    """The main table: one line per (cell, config, dtype)."""
    head = ("| cell | cfg (B,T,D,H) | dtype | npnet fwd ms | npnet f+b ms | ref fwd ms | ref f+b ms "
            "| torch fwd ms | torch f+b ms | fwd ratio | f+b ratio (target) | f+b ratio of mins | npnet f+b GFLOP/s "
            "| % GEMM peak |")
    lines = [head, "|" + "|".join(["---"] * 14) + "|"]
    for r in rows:
        cfg = f"{r['config']} ({r['B']},{r['T']},{r['D']},{r['H']})"
        tr = target_ratio(r["cell"], r["dtype"], r["config"])
        ratio = "-"
        if "ratio_fb" in r:
            ratio = f"{r['ratio_fb']:.2f} (<={tr:g} {'ok' if r['ratio_fb'] <= tr else 'MISS'})"
        pk = peaks.get(r["dtype"], {}).get("median_gflops")
        pct = f"{100 * r['gflops_fb'] / pk:.0f}%" if pk else "-"
        if r["config"] in PEAK_TARGET and pk:
            pct += " ok" if r["gflops_fb"] / pk >= PEAK_TARGET[r["config"]] else " MISS"
        lines.append(md_row([
            LABEL[r["cell"]], cfg, r["dtype"], fmt_ms(r.get("npnet_fwd_s")), fmt_ms(r.get("npnet_fb_s")),
            fmt_ms(r.get("ref_fwd_s")), fmt_ms(r.get("ref_fb_s")), fmt_ms(r.get("torch_fwd_s")),
            fmt_ms(r.get("torch_fb_s")),
            f"{r['ratio_fwd']:.2f}" if "ratio_fwd" in r else "-", ratio,
            f"{r['ratio_fb_of_min']:.2f}" if "ratio_fb_of_min" in r else "-",
            f"{r['gflops_fb']:.1f}", pct]))
    return "\n".join(lines)


def floor_markdown(rows: list, peaks: dict) -> str:
    """The --gemm-floor table: npnet against its GEMMs alone and GEMMs + exp."""
    lines = ["GEMM-only floor (the same GEMMs, no elementwise work, no Python beyond the loop); exp floor: "
             "one np.exp per step over every gate pre-activation (and c for the LSTM), the least "
             "transcendental work a NumPy cell can do. GEMMs + exp is a lower bound for any NumPy "
             "implementation on this machine: its % of peak and ratio to PyTorch are the best reachable.",
             "| cell | cfg | dtype | npnet f+b ms | GEMMs only f+b ms | npnet / GEMMs | GEMMs GFLOP/s "
             "| GEMMs % of peak | exp floor ms | GEMMs + exp ms | its % of peak | its ratio to torch |",
             "|" + "|".join(["---"] * 12) + "|"]
    for r in rows:
        if "gemm_fb_s" not in r:
            continue
        pk = peaks.get(r["dtype"], {}).get("median_gflops")
        f_fb = flops((r["B"], r["T"], r["D"], r["H"]), CELLS[r["cell"]].gates)[1]
        least = r["gemm_fb_s"] + r["exp_s"]
        lines.append(md_row([LABEL[r["cell"]], r["config"], r["dtype"], fmt_ms(r["npnet_fb_s"]),
                             fmt_ms(r["gemm_fb_s"]), f"{r['npnet_fb_over_gemm']:.2f}",
                             f"{r['gemm_gflops_fb']:.1f}",
                             f"{100 * r['gemm_gflops_fb'] / pk:.0f}%" if pk else "-",
                             fmt_ms(r["exp_s"]), fmt_ms(least),
                             f"{100 * f_fb / least / 1e9 / pk:.0f}%" if pk else "-",
                             f"{least / r['torch_fb_s']:.2f}" if "torch_fb_s" in r else "-"]))
    return "\n".join(lines)


def memory_markdown(mem: list) -> str:
    """The activation-cache table (see memory.py)."""
    if not mem:
        return ""
    ks = sorted({int(k) for m in mem for k in m["windows"]})
    head = ["cell", "cfg", "dtype", "cache MB (full BPTT)", "floor T*B*(G+2)*H MB", "cache/floor",
            "x itself MB"] + [f"cache MB k={k}" for k in ks] + ["peak MB fprop+bprop (tracemalloc)"]
    lines = [md_row(head), "|" + "|".join(["---"] * len(head)) + "|"]
    mb = 1 / 2 ** 20
    for m in mem:
        w = [f"{m['windows'][str(k)]['cache_bytes'] * mb:.2f}" if str(k) in m["windows"] else "-" for k in ks]
        lines.append(md_row([LABEL[m["cell"]], m["config"], m["dtype"], f"{m['cache_bytes'] * mb:.2f}",
                             f"{m['floor_bytes'] * mb:.2f}", f"{m['cache_bytes'] / m['floor_bytes']:.2f}",
                             f"{m['input_bytes'] * mb:.2f}"] + w + [f"{m['peak_fb_bytes'] * mb:.2f}"]))
    return "\n".join(lines)


def verdicts(rows: list, peaks: dict) -> list:
    """One entry per target. With ``--gemm-floor`` each also carries ``bound``: the same measure
    for the GEMMs + exp lower bound (see floor.gemm_floor), and ``reachable``: whether any
    NumPy implementation could meet the target on this machine by that bound."""
    out = []
    for r in rows:
        least = r["gemm_fb_s"] + r["exp_s"] if "gemm_fb_s" in r else None
        if "ratio_fb" in r:
            tr = target_ratio(r["cell"], r["dtype"], r["config"])
            v = {"cell": r["cell"], "config": r["config"], "dtype": r["dtype"], "kind": "ratio f+b",
                 "value": round(r["ratio_fb"], 3), "target": f"<= {tr:g}", "met": r["ratio_fb"] <= tr}
            if least is not None:
                v["bound"] = round(least / r["torch_fb_s"], 3)
                v["reachable"] = v["bound"] <= tr
            out.append(v)
        pk = peaks.get(r["dtype"], {}).get("median_gflops")
        if r["config"] in PEAK_TARGET and pk:
            frac = r["gflops_fb"] / pk
            v = {"cell": r["cell"], "config": r["config"], "dtype": r["dtype"], "kind": "% GEMM peak",
                 "value": round(100 * frac, 1), "target": f">= {100 * PEAK_TARGET[r['config']]:.0f}%",
                 "met": frac >= PEAK_TARGET[r["config"]]}
            if least is not None:
                f_fb = flops((r["B"], r["T"], r["D"], r["H"]), CELLS[r["cell"]].gates)[1]
                v["bound"] = round(100 * f_fb / least / 1e9 / pk, 1)
                v["reachable"] = v["bound"] >= 100 * PEAK_TARGET[r["config"]]
            out.append(v)
    return out


def verdicts_text(vs: list) -> str:
    """How many targets are met, and one line per miss."""
    lines = [f"\nTargets met: {sum(v['met'] for v in vs)} of {len(vs)}"]
    for v in vs:
        if not v["met"]:
            bound = ""
            if "bound" in v:
                bound = (f"; NumPy lower bound {v['bound']}: "
                         + ("reachable in principle" if v["reachable"] else "unreachable here"))
            lines.append(f"  MISS {LABEL[v['cell']]} {v['config']} {v['dtype']} {v['kind']}: "
                         f"{v['value']} (target {v['target']}{bound})")
    return "\n".join(lines)


def header_text(info: dict) -> str:
    """The lines above the tables: date, commit, machine, BLAS, threads, load, method."""
    torch = info["torch"] is not None
    lines = [f"# npnet RNN benchmark, {info['date']}, commit {info['commit']}",
             f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs"
             f" ({info['physical_cores']} physical cores), Python {info['python']}, NumPy {info['numpy']}"]
    for b in info["blas"]:
        lines.append(f"threadpool: {b.get('user_api')} {b.get('internal_api')} {b.get('version') or ''} "
                     f"threads={b.get('num_threads')} {b.get('architecture') or ''} {b.get('library') or ''}".rstrip())
    lines.append(f"threads pinned: BLAS {info['threads']}, torch "
                 f"{info['torch_threads'] if torch else '(not installed)'}"
                 f"{' (torch ' + info['torch'] + ')' if torch else ''}")
    lines.append(f"load average (1, 5, 15 min) at start: {info['load_start']} on {info['logical_cpus']} CPUs"
                 " (a shared machine: times above ~1 mean other processes compete for the cores)")
    return "\n".join(lines)


def method_text(info: dict) -> str:
    return (f"timing: {info['clock']} clock, median of {info['repeats']} interleaved rounds "
            f"({info['ref_repeats']} for the reference) of {info['block']} calls per contender, the first "
            f"not recorded, after {info['warmup']} warm-up rounds; "
            "backward loss = sum(out * fixed random tensor)")


def profile_text(res: dict) -> str:
    """One profile (see profiling.profile_one) as text."""
    out = [f"\n### Profile {LABEL[res['cell']]} config {res['config']} {res['dtype']}: "
           f"fprop {res['fprop_ms']:.2f} ms ({res['fprop_us_per_step']:.1f} us/step), "
           f"bprop {res['bprop_ms']:.2f} ms ({res['bprop_us_per_step']:.1f} us/step)",
           f"cProfile (C functions and Python calls; ufuncs and operators are invisible to it), "
           f"{res['c_calls_per_step']:.1f} calls per step in all:",
           f"  {'calls/step':>10} {'tottime ms/iter':>16} {'cumtime ms/iter':>16}  function"]
    for r in res["cprofile"]:
        out.append(f"  {r['calls_per_step']:>10.2f} {r['tottime_ms_per_iter']:>16.3f} "
                   f"{r['cumtime_ms_per_iter']:>16.3f}  {r['func']}")
    out.append("Lines (hits per step, % of traced time, inclusive of calls), lines hit >= 0.01/step:")
    for r in res["lines"]:
        if r["hits_per_step"] >= 0.01 or r["pct_time"] >= 1.0:
            out.append(f"  {r['file']}:{r['line']:<4} {r['hits_per_step']:>6.2f}/step {r['pct_time']:5.1f}%  {r['src']}")
    out.append(f"Per-step loop lines executed (fprop+bprop): {res['loop_lines_per_step']:.0f}")
    out.append("NumPy per-call costs on this machine at this (B, H):")
    out.extend(f"  {v:7.2f} us  {k}" for k, v in res["call_costs_us"].items())
    return "\n".join(out)


def write_json(path: str, info: dict, peaks: dict, rows: list, mem: list, profiles: list,
               train: Optional[dict], partial: bool = False) -> None:
    """Everything measured; ``partial`` while the run is still going (rewritten after each case)."""
    with open(path, "w") as f:
        json.dump({"info": info, "partial": partial, "peaks": peaks, "rows": rows, "memory": mem,
                   "targets": verdicts(rows, peaks) if rows else [], "profiles": profiles,
                   "train": train}, f, indent=1)
