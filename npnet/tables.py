"""The one CSV writer of npnet: rows (dicts or sequences) to a file, appended or replaced atomically.

Training logs (:class:`npnet.CSVLogger`), sweep results (:func:`npnet.sweep.run_sweep`) and the
experiments' tables all go through :func:`write_csv`, so every CSV npnet writes has the same
quoting, the same empty cell for a missing value and the same header rule.
"""
from __future__ import annotations

import csv
import os

__all__ = ["write_csv"]


def write_csv(path, rows, fields=None, append: bool = False) -> None:
    """Write ``rows`` under the header ``fields``.

    rows : iterable of dicts (a missing key is an empty cell, extra keys are ignored) or of
        sequences (written as they are; then ``fields`` is required).
    fields : the columns; default the union of the dict rows' keys in first-seen order.
    append : False replaces the file atomically (written to a temporary file, then renamed, so a
        crash never leaves half a table); True appends, writing the header only when the file is
        new or empty (a log that grows across runs).
    """
    rows = list(rows)
    if fields is None:
        if any(not isinstance(r, dict) for r in rows):
            raise TypeError("write_csv: rows that are not dicts need fields= (the header)")
        fields = list(dict.fromkeys(k for r in rows for k in r))
    fields = list(fields)
    path = os.fspath(path)
    if append:
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        with open(path, "a", newline="") as f:
            _write(f, rows, fields, header=new)
        return
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as f:
            _write(f, rows, fields, header=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write(f, rows, fields, header: bool) -> None:
    w = csv.writer(f)
    if header:
        w.writerow(fields)
    for r in rows:
        w.writerow([r.get(k, "") for k in fields] if isinstance(r, dict) else list(r))
