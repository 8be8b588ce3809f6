"""docs/training.md and docs/checkpoints.md run as written: every python block runs ON ITS OWN
(a fresh namespace, its own imports), and the first block of training.md (a 2-layer LSTM on
a toy problem) asserts that the model learned."""
import contextlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "docs" / "training.md", REPO / "docs" / "checkpoints.md"]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@contextlib.contextmanager
def one_blas_thread():
    """Small GEMMs: BLAS threads only add contention."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                           # pragma: no cover - optional
        yield
        return
    with threadpool_limits(1):
        yield


def run_alone(path, i, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                   # files a block writes land in a scratch folder
    ns = {"__name__": "docs_example"}
    with one_blas_thread():
        exec(compile(code, f"{path}:block{i}", "exec"), ns)
    return ns


def test_training_doc_runs_and_learns(capsys, tmp_path, monkeypatch):
    first = python_blocks(DOCS[0])[0]
    assert "num_layers=2" in first and 'cell="lstm"' in first and "assert" in first
    user_lines = [l for l in first.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert len(user_lines) < 20, f"the quick example has {len(user_lines)} lines"
    ns = run_alone(DOCS[0], 0, first, tmp_path, monkeypatch)
    assert ns["result"]["metric"] > 0.85
    assert "metric" in capsys.readouterr().out


BLOCKS = [(p, i, code) for p in DOCS for i, code in enumerate(python_blocks(p))]


@pytest.mark.parametrize("path, i, code", BLOCKS, ids=[f"{p.name}-{i}" for p, i, _ in BLOCKS])
def test_every_block_runs_on_its_own(path, i, code, tmp_path, monkeypatch):
    if path == DOCS[0] and i == 0:
        pytest.skip("run by test_training_doc_runs_and_learns")
    run_alone(path, i, code, tmp_path, monkeypatch)


def test_the_docs_cover_the_training_api():
    text = DOCS[0].read_text(encoding="utf-8")
    for name in ("EarlyStopping", "TimeLimit", "CSVLogger", "TensorBoardLogger", "npnet.Callback",
                 "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau", "LambdaLR", "LinearLR",
                 "compute_gradients", "runner_class", "stop_training", "state_dict", "Learner.resume"):
        assert name in text, name
    assert len(BLOCKS) >= 10
