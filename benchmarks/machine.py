"""Facts about the machine and the code measured, for the report's header and the JSON file."""
from __future__ import annotations

import os
import platform
import subprocess

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_info() -> dict:
    """CPU model, logical CPUs and physical cores (from /proc/cpuinfo where there is one)."""
    model, physical = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            phys = None
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    model = value
                elif key == "physical id":
                    phys = value
                elif key == "core id":
                    physical.add((phys, value))
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(),
            "physical_cores": len(physical) or None, "python": platform.python_version(),
            "platform": platform.platform()}


def blas_info() -> list:
    """One entry per loaded thread pool (BLAS, OpenMP) from threadpoolctl, or what NumPy's
    build configuration says about its BLAS when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        cfg = np.show_config(mode="dicts") if "mode" in np.show_config.__code__.co_varnames else {}
        blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
        return [{"user_api": "blas", "internal_api": blas.get("name"), "version": blas.get("version"),
                 "num_threads": None, "note": "threadpoolctl not installed: threads set by env vars"}]
    out = []
    for d in threadpool_info():
        e = {k: d.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                   "num_threads", "architecture", "threading_layer")}
        fp = d.get("filepath") or ""
        e["library"] = os.path.join(os.path.basename(os.path.dirname(fp)), os.path.basename(fp))
        out.append(e)
    return out


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as text."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def git_commit() -> str:
    """Short hash of HEAD, marked ``+dirty(npnet)`` when npnet/ has uncommitted changes."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "npnet"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty(npnet)" if dirty else "")
    except Exception:
        return "unknown"

