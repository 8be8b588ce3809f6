"""The Python examples in README.md and docs/usage.md run as written."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/usage.md"])
def test_examples_run(doc, capsys):
    blocks = python_blocks(REPO / doc)
    assert blocks, f"no python example in {doc}"
    for code in blocks:
        exec(compile(code, doc, "exec"), {"__name__": "docs_example"})
