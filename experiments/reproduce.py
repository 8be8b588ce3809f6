"""Re-run every documented experiment, then regenerate docs/img/ and the results tables of the docs.

    python experiments/reproduce.py              # everything, resumable; docs/img and tables rewritten
    python experiments/reproduce.py --list       # the jobs: commands, figures, tables
    python experiments/reproduce.py --quick      # every script at tiny settings (CI); docs untouched

The jobs are declared in reproduce_jobs.py (one Job per command), the table builders in
reproduce_tables.py. Each job runs as its own process into OUT/<job>/; a folder holding DONE
(written only after the script exited 0 and left every expected file) is skipped on the next run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import reproduce_jobs  # noqa: E402
from reproduce_tables import regenerate  # noqa: E402

QUICK_TIMEOUT_S = 300              # one --quick job; a tiny run that takes longer is a bug


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def command(job, out: Path, quick: bool) -> list:
    """The job's command line (this Python, the script, its settings, --out)."""
    return [sys.executable, str(HERE / job.script), *job.argv(quick), "--out", str(out / job.name)]


def display(job, quick: bool) -> str:
    return " ".join(["python", f"experiments/{job.script}", *job.argv(quick)])


def state(job, out: Path, quick: bool) -> str:
    """'done' (DONE records this very command), 'partial' (started with it: a sweep resumes) or 'new'."""
    folder, argv = out / job.name, job.argv(quick)
    done = read_json(folder / "DONE")
    if done is not None and done.get("args") == argv:
        return "done"
    started = read_json(folder / "STARTED")
    return "partial" if started is not None and started.get("args") == argv else "new"


def data_missing(job) -> list:
    """The data sets of ``job`` not on this machine (npnet.data.find_data_dir, no download)."""
    try:
        from npnet.data import find_data_dir
    except ImportError:                            # a checkout without `pip install -e .`
        sys.path.insert(1, str(REPO))
        from npnet.data import find_data_dir
    return [d for d in job.data if not (find_data_dir(d).is_dir() and any(find_data_dir(d).iterdir()))]


def job_env(threads: int) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    n = str(threads if threads > 0 else os.cpu_count() or 1)
    env.update(OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
    env.setdefault("TQDM_MININTERVAL", "30")      # a progress line every 30 s in the log, not 10 a second
    return env


def run_job(job, out: Path, quick: bool, log=print) -> dict:
    """Run one job into OUT/<job>/ (a 'new' folder is emptied first); DONE on success. Its record."""
    folder, argv = out / job.name, job.argv(quick)
    if state(job, out, quick) == "new" and folder.exists():
        shutil.rmtree(folder)                      # other settings, or a --force: start afresh
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "STARTED").write_text(json.dumps({"args": argv, "started": now()}) + "\n")
    (out / "logs").mkdir(exist_ok=True)
    logfile = out / "logs" / f"{job.name}.log"
    threads = 1 if quick else job.threads          # --quick runs every job in the pool
    t0, rec = time.perf_counter(), {"command": display(job, quick), "started": now(), "log": str(logfile),
                                    "blas_threads": threads or os.cpu_count()}
    with open(logfile, "w") as f:
        try:
            rc = subprocess.run(command(job, out, quick), stdout=f, stderr=subprocess.STDOUT, cwd=REPO,
                                env=job_env(threads), timeout=QUICK_TIMEOUT_S if quick else None).returncode
        except subprocess.TimeoutExpired:
            rc = f"timeout after {QUICK_TIMEOUT_S} s"
    rec.update(wall_s=round(time.perf_counter() - t0, 1), ended=now())
    missing = [f for f in (*job.figures, *job.expect) if not (folder / f).is_file()]
    if rc != 0 or missing:
        rec.update(status="failed", error=f"exit code {rc}" if rc != 0 else f"missing {', '.join(missing)}")
        tail = [ln[-300:] for ln in logfile.read_text(errors="replace").replace("\r", "\n").splitlines()[-15:]]
        log(f"  {job.name} FAILED ({rec['error']}); last lines of {logfile}:\n    " + "\n    ".join(tail))
        return rec
    rec["status"] = "ran"
    (folder / "DONE").write_text(json.dumps({"args": argv, "display": rec["command"], "wall_s": rec["wall_s"],
                                             "finished": rec["ended"]}, indent=1) + "\n")
    return rec


class Progress:
    """Prints which job started and finished, the elapsed time and an estimate of what is left."""

    def __init__(self, jobs, parallel: int):
        self.est = {j.name: j.est_s for j in jobs}
        self.n, self.k, self.parallel, self.t0 = len(jobs), 0, max(1, parallel), time.perf_counter()
        self.actual, self.lock = {}, threading.Lock()

    def start(self, job):
        with self.lock:
            print(f"[{clock(time.perf_counter() - self.t0)}] start  {job.name}", flush=True)

    def finish(self, job, rec):
        with self.lock:
            self.k += 1
            self.actual[job.name] = rec["wall_s"]
            done_est = sum(self.est[n] for n in self.actual)
            speed = sum(self.actual.values()) / done_est if done_est > 0 else 1.0
            left = sum(e for n, e in self.est.items() if n not in self.actual) * speed / self.parallel
            eta = f", about {clock(left)} left" if self.k < self.n else ""
            print(f"[{clock(time.perf_counter() - self.t0)}] {rec['status']:6s} {job.name} in {rec['wall_s']:.0f} s "
                  f"({self.k}/{self.n} jobs{eta})", flush=True)


def run_all(jobs, out: Path, quick: bool, n_jobs: int) -> dict:
    """Run ``jobs`` (those to run): the non-exclusive ones n_jobs at a time, longest first (joblib
    threads, each driving one process), then each exclusive job alone (with --quick every job is
    in the pool: their quick settings fan out over nothing). Returns {name: record}."""
    from joblib import Parallel, delayed
    progress, records = Progress(jobs, n_jobs), {}

    def one(job):
        progress.start(job)
        rec = run_job(job, out, quick)
        progress.finish(job, rec)
        records[job.name] = rec

    alone = [j for j in jobs if j.exclusive and not quick]
    pool = sorted((j for j in jobs if j not in alone), key=lambda j: -j.est_s)
    if pool:
        Parallel(n_jobs=min(n_jobs, len(pool)), backend="threading")(delayed(one)(j) for j in pool)
    for job in alone:
        one(job)
    return records


def machine() -> dict:
    import numpy as np
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        from threadpoolctl import threadpool_info
        blas = [{k: i.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
                for i in threadpool_info()]
    except ImportError:
        blas = "threadpoolctl not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas}


def git_state() -> dict:
    def git(*a):
        r = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def make_plan(jobs, out: Path, quick: bool, log=print):
    """(jobs to run, {name: why skipped}): a done job is skipped; with --quick so is one whose data
    are absent (the full run lets the script download them)."""
    plan, skipped = [], {}
    for j in jobs:
        st = state(j, out, quick)
        missing = data_missing(j) if quick else []
        if st == "done":
            skipped[j.name] = "done"
        elif missing:
            skipped[j.name] = f"skipped: no {', '.join(missing)} data (set NPNET_DATA)"
        else:
            plan.append(j)
        log(f"{j.name}: {skipped.get(j.name, 'resume' if st == 'partial' else 'run')}")
    return plan, skipped


def parser() -> argparse.ArgumentParser:
    names = ", ".join(j.name for j in reproduce_jobs.JOBS)
    p = argparse.ArgumentParser(prog="python experiments/reproduce.py", description=__doc__.split("\n\n")[0],
                                epilog=f"jobs: {names}. See docs/reproducing.md.")
    p.add_argument("--only", default=None, metavar="NAME[,NAME]", help="run only these jobs")
    p.add_argument("--list", action="store_true", help="list the jobs, their commands and outputs, and exit")
    p.add_argument("--quick", action="store_true",
                   help="every script at tiny settings into runs/reproduce-quick (CI); docs are not touched")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="jobs run at once (default: one per core, here %(default)s; exclusive jobs run alone)")
    p.add_argument("--out", default=None, help="run folders, logs, tables, manifest.json "
                                               "(default runs/reproduce, or runs/reproduce-quick with --quick)")
    p.add_argument("--force", action="store_true", help="rerun the selected jobs even if they are done")
    p.add_argument("--dry-run", action="store_true", help="show which jobs would run, with their commands; run and write nothing")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/img or the tables in docs/")
    return p


def select(p, only) -> list:
    if only is None:
        return list(reproduce_jobs.JOBS)
    known = {j.name: j for j in reproduce_jobs.JOBS}
    want = [n.strip() for n in only.split(",") if n.strip()]
    bad = [n for n in want if n not in known]
    if bad or not want:
        p.error(f"--only: unknown job {', '.join(bad) or repr(only)}; the jobs are: {', '.join(known)}")
    return [known[n] for n in want]


def print_list(jobs, quick: bool) -> None:
    for j in jobs:
        flags = [f for f, on in (("exclusive", j.exclusive), (f"needs {'+'.join(j.data)}", j.data)) if on]
        print(f"{j.name}{' [' + ', '.join(flags) + ']' if flags else ''}\n  {display(j, quick)}")
        for src, dst in j.figures.items():
            print(f"    {src} -> docs/img/{dst}")
        for t in (t for t in reproduce_jobs.TABLES if j.name in t.needs):
            print(f"    table {t.name}")


def main(argv=None, docs: Path = REPO / "docs") -> int:
    p = parser()
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error(f"--jobs must be >= 1, got {a.jobs}")
    jobs = select(p, a.only)
    if a.list:
        print_list(jobs, a.quick)
        return 0
    out = Path(a.out or ("runs/reproduce-quick" if a.quick else "runs/reproduce")).resolve()
    if a.force and not a.dry_run:
        for j in jobs:
            (out / j.name / "DONE").unlink(missing_ok=True)
            (out / j.name / "STARTED").unlink(missing_ok=True)   # 'new': the folder is emptied
    plan, skipped = make_plan(jobs, out, a.quick)
    if a.dry_run:
        for j in plan:
            print(f"  would run: {display(j, a.quick)} --out {out / j.name}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    started = now()
    t0 = time.perf_counter()
    print(f"{len(plan)} jobs to run, {len(jobs) - len(plan)} skipped -> {out}", flush=True)
    records = run_all(plan, out, a.quick, a.jobs)
    write_docs = not (a.quick or a.no_docs)
    print("regenerating" + (" docs/img and the docs' tables" if write_docs else " the tables into " + str(out)))
    done = {j.name for j in reproduce_jobs.JOBS if state(j, out, a.quick) == "done"}
    regen = regenerate(reproduce_jobs.JOBS, reproduce_jobs.TABLES, done, out, write_docs, docs)
    manifest = {"mode": "quick" if a.quick else "full", "argv": sys.argv[1:] if argv is None else list(argv),
                "started": started, "ended": now(), "wall_s": round(time.perf_counter() - t0, 1),
                **git_state(), "machine": machine(), "jobs": {}, **regen}
    for j in reproduce_jobs.JOBS:
        done = read_json(out / j.name / "DONE")
        rec = records.get(j.name) or ({"status": skipped.get(j.name, "done"), "command": done["display"],
                                       "wall_s": done["wall_s"], "ended": done["finished"]} if done else
                                      {"status": skipped.get(j.name, "not run")})
        manifest["jobs"][j.name] = rec
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    failed = [n for n, r in records.items() if r["status"] == "failed"]
    for e in regen["errors"]:
        print(f"error: {e}", file=sys.stderr)
    print(f"{len(records) - len(failed)} ran, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; "
          f"{clock(time.perf_counter() - t0)}; manifest {out / 'manifest.json'}", flush=True)
    return 1 if failed or regen["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
