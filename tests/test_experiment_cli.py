"""Issue 14: the experiment scripts keep the promise of docs/experiments.md -- a bad command line
is argparse's usage error (exit code 2, "usage:" on stderr, no traceback) and nothing is written
-- for --out naming an existing file, a --data-dir / --mnist-dir without the data,
--dask-scheduler without dask installed, and --target / --solved outside (0, 1]; and --help
shows the default of every option. Each script runs as a subprocess, as a user starts it."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
SCRIPTS = ["counting", "digit_sums", "exploding", "first_element", "memory", "names", "sine", "vanishing"]
TINY = {"counting": ["--hidden", "4", "--steps", "2", "--batch-size", "4", "--eval-size", "8", "--test-size", "8"],
        "memory": ["--hidden", "4", "--steps", "2", "--batch-size", "4", "--seq-len", "7", "--remember", "2",
                   "--symbols", "3", "--eval-size", "8", "--test-size", "8"],
        "first_element": ["--hidden", "4", "--steps", "2", "--batch-size", "4", "--eval-size", "8", "--test-size", "8"],
        "sine": ["--hidden", "4", "--steps", "2", "--batch-size", "4", "--eval-size", "4", "--test-size", "4",
                 "--seq-len", "40", "--train-len", "35"],
        "exploding": ["--quick"], "vanishing": ["--quick"],
        "names": ["--steps", "1"], "digit_sums": ["--steps", "1", "--digit-steps", "0", "--test-seqs", "8"]}


def run_script(name, *args, env_extra=None, timeout=120):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, str(EXP / f"{name}.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(ROOT))


def check_usage_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "usage:" in proc.stderr and "error:" in proc.stderr and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr[-1000:]


def data_args(name):
    """The data option a script needs to get past its data (the real folders, when present)."""
    import npnet
    kind = {"names": ("names", "--data-dir"), "digit_sums": ("mnist", "--mnist-dir")}.get(name)
    if kind is None:
        return []
    folder = npnet.data.find_data_dir(kind[0])
    if not folder.is_dir():
        pytest.skip(f"{kind[0]} data not found (set NPNET_DATA)")
    return [kind[1], str(folder)]


# ---------------------------------------------------------------- --help
@pytest.mark.parametrize("name", SCRIPTS)
def test_help_shows_every_default(name):
    out = run_script(name, "--help").stdout
    entries, cur = [], None
    for line in out.splitlines():                         # an option's entry: its line and the indented rest
        if re.match(r"^  -", line):
            cur = [line]
            entries.append(cur)
        elif cur is not None and line.startswith("   "):
            cur.append(line)
        else:
            cur = None
    assert len(entries) > 15, out
    missing = [e[0].split()[0].rstrip(",") for e in entries if "(default:" not in " ".join(e)
               and not e[0].strip().startswith("-h")]
    assert not missing, f"{name} --help shows no default for {missing}"


# ---------------------------------------------------------------- --out naming a file
@pytest.mark.parametrize("name", SCRIPTS)
def test_out_naming_an_existing_file_is_a_usage_error(name, tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    proc = run_script(name, *TINY[name], *data_args(name), "--out", str(target), "--quiet")
    check_usage_error(proc, "--out", "existing file")
    assert target.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["results.txt"]


# ---------------------------------------------------------------- data folders without the data
@pytest.mark.parametrize("name,option,files", [
    ("names", "--data-dir", []),
    ("names", "--data-dir", ["README.md"]),
    ("digit_sums", "--mnist-dir", []),
    ("digit_sums", "--mnist-dir", ["README.md", "t10k-images-idx3-ubyte.gz"]),       # images without labels
])
def test_a_data_folder_without_the_data_is_a_usage_error(name, option, files, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for f in files:
        (folder / f).write_bytes(b"")
    out = tmp_path / "run"
    proc = run_script(name, *TINY[name], option, str(folder), "--out", str(out), "--quiet", timeout=60)
    check_usage_error(proc, option, "holds no")
    assert not out.exists() and sorted(os.listdir(folder)) == sorted(files)


# ---------------------------------------------------------------- --dask-scheduler without dask
@pytest.mark.parametrize("name,extra", [("first_element", ["--sweep", "--lengths", "3", "--cells", "rnn",
                                                          "--reps", "1"]),
                                        ("exploding", []), ("vanishing", [])])
def test_dask_scheduler_without_dask_is_a_usage_error(name, extra, tmp_path):
    fake = tmp_path / "no_dask"                                    # an environment where dask is missing
    (fake / "distributed").mkdir(parents=True)
    (fake / "distributed" / "__init__.py").write_text('raise ImportError("no module named distributed")\n')
    out = tmp_path / "run"
    proc = run_script(name, *TINY[name], *extra, "--dask-scheduler", "tcp://127.0.0.1:8786",
                      "--out", str(out), "--quiet",
                      env_extra={"PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])})
    check_usage_error(proc, "--dask-scheduler", "pip install")
    assert not out.exists()


# ---------------------------------------------------------------- --target / --solved outside (0, 1]
@pytest.mark.parametrize("value", ["0", "1.5", "nan"])
@pytest.mark.parametrize("name,option", [("memory", "--target"), ("counting", "--target"), ("sine", "--target"),
                                         ("first_element", "--target"), ("first_element", "--solved")])
def test_target_and_solved_outside_0_1_are_usage_errors(name, option, value, tmp_path):
    out = tmp_path / "run"
    proc = run_script(name, *TINY[name], option, value, "--out", str(out), "--quiet")
    check_usage_error(proc, option, "(0, 1]")
    assert not out.exists()
