"""Every fenced ```python block in README.md and docs/ (docs/notes/ excluded) runs on its own.

Each block runs in a fresh interpreter, in an empty temporary folder, with only what the block
itself imports; data comes through ``npnet.data.find_data_dir`` (``NPNET_DATA`` is set as in
conftest.py) and plots go to the Agg backend. A failure names the block's file and line, and the
traceback points at the line of the Markdown file (the block is compiled under the file's name,
shifted to its line).
"""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from npnet.data import find_data_dir

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120                      # seconds per block; a block that trains trains a few steps
FENCE = re.compile(r"^(\s*)```python\s*$")


def doc_files():
    """README.md and every docs/**/*.md outside docs/notes/, in a stable order."""
    docs = sorted(p for p in (REPO / "docs").rglob("*.md") if "notes" not in p.relative_to(REPO / "docs").parts)
    return [REPO / "README.md"] + docs


def python_blocks(path):
    """[(first code line, 1-based; code)] for each fenced ```python block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path.relative_to(REPO)}:{start}: unclosed ```python block")
        blocks.append((start + 1, textwrap.dedent("\n".join(body)) + "\n"))
        i += 1
    return blocks


BLOCKS = [(path, line, code) for path in doc_files() for line, code in python_blocks(path)]
IDS = [f"{path.relative_to(REPO)}:{line}" for path, line, _ in BLOCKS]

# Run in the child: compile the block under the Markdown file's name, moved down to its line, so
# a traceback reads 'File ".../docs/usage.md", line 42' and shows that line.
_DRIVER = ("import sys; code = sys.stdin.read(); "
           "exec(compile('\\n' * (int(sys.argv[2]) - 1) + code, sys.argv[1], 'exec'), "
           "{'__name__': '__main__'})")


# A block that loads a data set runs only where that data set is (NPNET_DATA, set by conftest.py
# when the shared copy exists, or the cache); elsewhere it is skipped rather than downloading.
NEEDS = {"load_names(": ("names", "*.txt"), "load_mnist(": ("mnist", "t10k-*"),
         "load_tinyshakespeare(": ("tinyshakespeare", "input.txt")}


def _env():
    env = dict(os.environ)                          # NPNET_DATA as tests/conftest.py set it
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["MPLBACKEND"] = "Agg"
    env.setdefault("OMP_NUM_THREADS", "1")          # small examples: extra BLAS threads only contend
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def test_docs_have_examples():
    for doc in ("README.md", "docs/usage.md"):
        assert python_blocks(REPO / doc), f"no python example in {doc}"
    assert not [p for p, _, _ in BLOCKS if "notes" in p.parts], "docs/notes/ holds lab notes, not examples"


@pytest.mark.parametrize("path, line, code", BLOCKS, ids=IDS)
def test_doc_block_runs_alone(path, line, code, tmp_path):
    where = f"{path.relative_to(REPO)}:{line}"
    for call, (name, pattern) in NEEDS.items():
        if call in code and not any(find_data_dir(name).glob(pattern)):
            pytest.skip(f"{where} needs the {name} data, not found at {find_data_dir(name)} (set NPNET_DATA)")
    try:
        proc = subprocess.run([sys.executable, "-c", _DRIVER, str(path), str(line)], input=code,
                              capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where}: the block did not finish within {TIMEOUT} s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{where}: the block fails when run on its own (exit {proc.returncode}):\n"
                    f"{proc.stderr[-3000:]}", pytrace=False)


def test_a_failing_block_is_reported_at_its_markdown_line(tmp_path):
    """The runner itself: blocks and their first lines are found (indented ones too), and an error
    in a block is reported at the Markdown file's own line."""
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n```python\nx = 1\n```\n\n- item\n\n  ```python\n  y = 2\n  assert y == 3, 'boom'\n  ```\n",
                   encoding="utf-8")
    blocks = python_blocks(doc)
    assert [line for line, _ in blocks] == [4, 10] and blocks[1][1] == "y = 2\nassert y == 3, 'boom'\n"
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(doc), "10"], input=blocks[1][1],
                          capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=TIMEOUT)
    assert proc.returncode != 0
    assert f'File "{doc}", line 11' in proc.stderr and "AssertionError: boom" in proc.stderr
