"""docs/training.md runs as written: its python blocks execute in order in one namespace, and
the first one (a 2-layer LSTM on a toy problem) asserts that the model learned."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "training.md"


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_training_doc_runs_and_learns(capsys):
    blocks = python_blocks(DOC)
    assert len(blocks) >= 1
    first = blocks[0]
    assert "num_layers=2" in first and 'cell="lstm"' in first and "assert" in first
    user_lines = [l for l in first.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert len(user_lines) < 20, f"the quick example has {len(user_lines)} lines"
    try:                                          # small GEMMs: BLAS threads only add contention
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:                           # pragma: no cover - optional
        limits = None
    try:
        ns = {"__name__": "docs_training"}
        for i, code in enumerate(blocks):
            exec(compile(code, f"{DOC}:block{i}", "exec"), ns)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    assert ns["result"]["metric"] > 0.85
    assert "metric" in capsys.readouterr().out
