"""Sweeps: local processes, resume, failures kept apart, and a Dask cluster on 127.0.0.1."""
import numpy as np
import pytest

from npnet import sweep


def tiny_run(seed, n, fail=False):
    """A stand-in for a training run: deterministic in its seed."""
    if fail:
        raise RuntimeError(f"boom at n={n}")
    rng = np.random.default_rng(seed)
    return {"score": float(rng.standard_normal(n).sum())}


CONFIGS = [{"seed": s, "n": n} for s in range(3) for n in (2, 5)]


def expected(c):
    return tiny_run(**c)["score"]


def test_local_sweep_writes_one_csv(tmp_path):
    rows = sweep.run_sweep(tiny_run, CONFIGS, tmp_path / "r.csv", n_jobs=2, progress=False)
    assert [r["status"] for r in rows] == ["ok"] * len(CONFIGS)
    assert [r["score"] for r in rows] == [expected(c) for c in CONFIGS]
    saved = sweep.read_results(tmp_path / "r.csv")
    assert len(saved) == len(CONFIGS)
    assert {float(r["score"]) for r in saved} == {expected(c) for c in CONFIGS}


def test_failure_is_reported_and_does_not_sink_the_rest(tmp_path):
    configs = CONFIGS[:2] + [{"seed": 9, "n": 3, "fail": True}]
    rows = sweep.run_sweep(tiny_run, configs, tmp_path / "r.csv", n_jobs=1, progress=False)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert "boom at n=3" in rows[2]["error"] and rows[2]["seed"] == 9


def test_resume_skips_finished_runs(tmp_path):
    out = tmp_path / "r.csv"
    sweep.run_sweep(tiny_run, CONFIGS[:3], out, n_jobs=1, progress=False)
    seen = []
    rows = sweep.run_sweep(tiny_run, CONFIGS, out, n_jobs=1, progress=False, on_result=seen.append)
    assert len(seen) == len(CONFIGS) - 3          # only the new ones ran
    assert len(sweep.read_results(out)) == len(CONFIGS)
    assert [float(r["score"]) for r in rows] == [expected(c) for c in CONFIGS]


def _local_cluster(distributed):
    """A one-worker cluster on 127.0.0.1; on a heavily loaded machine startup can time out once."""
    import dask
    with dask.config.set({"distributed.comm.timeouts.connect": "90s"}):
        for attempt in range(3):
            try:
                return distributed.LocalCluster(host="127.0.0.1", n_workers=1, threads_per_worker=2,
                                                processes=False, protocol="tcp",
                                                dashboard_address=None)
            except RuntimeError:
                if attempt == 2:
                    raise


def test_dask_local_cluster_matches_local_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    local = sweep.run_sweep(tiny_run, CONFIGS, tmp_path / "local.csv", n_jobs=1, progress=False)
    with _local_cluster(distributed) as cluster:
        address = cluster.scheduler_address
        remote = sweep.run_sweep(tiny_run, CONFIGS, tmp_path / "dask.csv",
                                 dask_scheduler=address, progress=False)
    assert address.startswith("tcp://127.0.0.1:")
    assert [r["score"] for r in remote] == [r["score"] for r in local]
