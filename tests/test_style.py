"""The repository's structural rules, checked: function and file sizes, one training step,
no private pokes across classes. Each check names the offenders so a failure says what to fix."""
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from function_sizes import function_sizes, tree_function_sizes  # noqa: E402


def _py_files(*folders):
    return [p for f in folders for p in sorted((REPO / f).rglob("*.py"))]


def test_function_sizes_are_counted_without_docstrings_and_comments(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('def f(x):\n    """Doc\n    string."""\n    # a comment\n\n    y = x  # trailing\n    return y\n')
    assert function_sizes(src) == [(3, "f", 1)]          # def line, y = x, return y


def test_no_function_in_npnet_over_60_lines():
    long = [f"{loc} {where}" for loc, where in tree_function_sizes(REPO / "npnet") if loc > 60]
    assert not long, "functions over 60 lines of code:\n" + "\n".join(long)


def test_experiment_and_benchmark_files_at_most_300_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for p in _py_files("experiments", "benchmarks")
            if (n := len(p.read_text().splitlines())) > 300]
    assert not long, "files over 300 lines:\n" + "\n".join(long)


def test_one_training_step_and_no_optimiser_step_outside_training():
    defs, steps = [], []
    for p in _py_files("npnet", "experiments", "benchmarks"):
        rel = p.relative_to(REPO).as_posix()
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\bdef train_step\b", line):
                defs.append(f"{rel}:{i}")
            if (re.search(r"\b(opt|optim|optimizer|optimiser)\w*\.step\(", line)
                    and not rel.startswith("npnet/training/")):
                steps.append(f"{rel}:{i}: {line.strip()}")
    assert defs == [d for d in defs if d.startswith("npnet/training/runner.py:")] and len(defs) == 1, defs
    assert not steps, "optimiser step() outside npnet/training/:\n" + "\n".join(steps)


def test_no_private_cache_or_state_pokes_outside_the_owning_class():
    pokes = []
    for p in _py_files("npnet", "experiments", "benchmarks"):
        for i, line in enumerate(p.read_text().splitlines(), 1):
            for m in re.finditer(r"(\w+)\.(_cache|_unpack|_pack)\b", line):
                if m.group(1) != "self":
                    pokes.append(f"{p.relative_to(REPO)}:{i}: {line.strip()}")
    assert not pokes, "\n".join(pokes)
