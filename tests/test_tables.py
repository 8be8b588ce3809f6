"""npnet.tables.write_csv: the one CSV writer (training logs, sweeps, experiment tables)."""
import csv

import pytest

from npnet.tables import write_csv


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_dict_rows_union_of_keys_and_empty_cells(tmp_path):
    p = tmp_path / "t.csv"
    write_csv(p, [{"a": 1, "b": 2.5}, {"c": "x", "a": 3}])
    assert _read(p) == [["a", "b", "c"], ["1", "2.5", ""], ["3", "", "x"]]


def test_fields_select_and_order_columns_and_sequences_need_them(tmp_path):
    p = tmp_path / "t.csv"
    write_csv(p, [{"a": 1, "b": 2, "z": 9}], fields=["b", "a"])
    assert _read(p) == [["b", "a"], ["2", "1"]]
    write_csv(p, [[1, 2], [3, 4]], fields=["x", "y"])
    assert _read(p) == [["x", "y"], ["1", "2"], ["3", "4"]]
    with pytest.raises(TypeError, match="fields="):
        write_csv(p, [[1, 2]])


def test_append_writes_the_header_once(tmp_path):
    p = tmp_path / "log.csv"
    write_csv(p, [{"step": 1}], ["step", "loss"], append=True)
    write_csv(p, [{"step": 2, "loss": 0.5}], ["step", "loss"], append=True)
    assert _read(p) == [["step", "loss"], ["1", ""], ["2", "0.5"]]


def test_replace_is_atomic_a_failing_row_leaves_the_old_file(tmp_path):
    p = tmp_path / "t.csv"
    write_csv(p, [{"a": 1}])

    class Bad(dict):
        def get(self, *a):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        write_csv(p, [{"a": 2}, Bad(a=3)], fields=["a"])
    assert _read(p) == [["a"], ["1"]]
    assert [q.name for q in tmp_path.iterdir()] == ["t.csv"]          # no temporary file left
