"""Fan out independent training runs: joblib processes by default, a Dask cluster on request.

A sweep is a module-level function ``fn(**config) -> dict`` and a list of JSON-able
configs. Results go to one CSV, one row per run (the config's keys, the result's keys,
``status`` and ``error``), written as runs finish, so an interrupted sweep resumes
without redoing finished runs. A run that raises is reported with its configuration and
does not sink the others.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import traceback
from pathlib import Path
from typing import Callable, Iterable

from ..layer import NpnetError
from ..tables import write_csv


def run_key(config: dict) -> str:
    """A stable identifier of a configuration (sha1 of its sorted JSON)."""
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _safe_call(fn: Callable, config: dict) -> dict:
    """Run one configuration; never raises (the failure becomes the row)."""
    try:
        result = fn(**config)
        if not isinstance(result, dict):
            raise NpnetError(f"sweep function must return a dict, got {type(result).__name__}")
        return {"status": "ok", "error": "", **result}
    except Exception as exc:  # a failed run is data, not the end of the sweep
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {"status": "failed", "error": tb}


def read_results(path) -> list[dict]:
    """Rows of a sweep CSV (values as strings, as written), or [] if there is none."""
    path = Path(path)
    if not path.exists():
        return []
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 28))   # cells may hold JSON arrays
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_all(path: Path, rows: list[dict]) -> None:
    """Rewrite the CSV atomically with the union of all columns."""
    write_csv(path, rows)


def run_sweep(fn: Callable, configs: Iterable[dict], out_csv, n_jobs: int = -1,
              dask_scheduler: str | None = None, resume: bool = True,
              progress: bool = True, on_result: Callable | None = None) -> list[dict]:
    """Run ``fn(**config)`` for every config and collect one CSV.

    Parameters
    ----------
    fn : module-level function (picklable) returning a dict of results
    configs : iterable of JSON-able dicts (seeds included: a config fully defines its run)
    out_csv : path of the results CSV (created or extended)
    n_jobs : joblib worker processes (-1: one per core)
    dask_scheduler : address ``tcp://host:8786`` of a Dask scheduler; runs go there instead
    resume : skip configs that already have an ``ok`` row in ``out_csv``
    on_result : optional callback(row) as each run finishes (e.g. a progress print)

    Returns
    -------
    list of row dicts for all configs, in the order given (failed runs included,
    with ``status == "failed"`` and the exception in ``error``).
    """
    configs = [dict(c) for c in configs]
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if resume:
        for r in read_results(out_csv):
            if r.get("status") == "ok":
                done[r["run_key"]] = r
    rows: dict[str, dict] = dict(done)
    todo = [c for c in configs if run_key(c) not in done]

    def finish(config, result):
        row = {"run_key": run_key(config), **config, **result}
        rows[row["run_key"]] = row
        _write_all(out_csv, list(rows.values()))
        if on_result is not None:
            on_result(row)

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), desc="sweep", unit="run")
    try:
        if dask_scheduler:
            _run_dask(fn, todo, dask_scheduler, finish, bar)
        elif todo:
            from joblib import Parallel, delayed
            par = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
            results = par(delayed(_tagged)(fn, i, c) for i, c in enumerate(todo))
            for i, result in results:
                finish(todo[i], result)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return [rows[run_key(c)] for c in configs]


def _tagged(fn, i, config):
    return i, _safe_call(fn, config)


def _run_dask(fn, todo, address, finish, bar):
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise NpnetError("--dask-scheduler needs dask.distributed: pip install 'npnet[dask]'") from exc
    with Client(address) as client:
        futures = {client.submit(_safe_call, fn, c, pure=False): c for c in todo}
        for fut in as_completed(futures):
            finish(futures[fut], fut.result())
            if bar is not None:
                bar.update(1)
