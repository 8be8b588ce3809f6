"""experiments/reproduce.py: the whole answer book at tiny settings (--quick, as CI runs it), the
resume logic on a fake script (a finished job is skipped, a failed one rerun), the table markers
(round trip, a missing marker is a clear error), the figures and tables written into a docs
folder, the command line's errors, and the job table against docs/img and the docs' markers."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
sys.path.insert(0, str(EXP))
import reproduce  # noqa: E402
import reproduce_jobs  # noqa: E402
from reproduce_jobs import Job, Table  # noqa: E402
from reproduce_tables import ReproduceError, read_table, regenerate, replace_table  # noqa: E402

FAKE = """import json, sys, pathlib
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
with open(out.parent / "calls.txt", "a") as f:
    f.write(out.name + "\\n")
code = int(args[args.index("--code") + 1])
if "--no-summary" not in args:
    (out / "summary.json").write_text(json.dumps({"headline": "acc", "acc": 0.5, "steps": 3}))
(out / "plot.png").write_bytes(b"png")
sys.exit(code)
"""


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake.py"
    script.write_text(FAKE)

    def job(name, code=0, *extra, **kw):
        return Job(name, str(script), ("--code", str(code), *extra), ("--code", str(code), *extra),
                   figures={"plot.png": f"{name}.png"}, **kw)
    return job


def calls(out: Path) -> list:
    return (out / "calls.txt").read_text().split() if (out / "calls.txt").exists() else []


# -- the whole book at tiny settings -------------------------------------------------------------
def test_quick_runs_every_job_and_leaves_the_docs_alone(tmp_path):
    out = tmp_path / "quick"
    before = tree_digest(ROOT / "docs")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(EXP / "reproduce.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert tree_digest(ROOT / "docs") == before                     # --quick never writes docs/
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mode"] == "quick" and manifest["machine"]["cores"] >= 1 and "commit" in manifest
    ran = [j for j in reproduce_jobs.JOBS if manifest["jobs"][j.name]["status"] == "ran"]
    for j in reproduce_jobs.JOBS:
        status = manifest["jobs"][j.name]["status"]
        assert status == "ran" or (j.data and status.startswith("skipped: no")), (j.name, status)
    assert {"memory", "counting", "first_element", "sine_free", "exploding", "vanishing"} <= {j.name for j in ran}
    for j in ran:
        assert (out / j.name / "DONE").is_file() and manifest["jobs"][j.name]["wall_s"] > 0
        for f in (*j.figures, *j.expect):
            assert (out / j.name / f).is_file(), (j.name, f)
    names = {j.name for j in ran}
    for t in reproduce_jobs.TABLES:                                  # every table whose jobs ran was built
        assert (out / "tables" / f"{t.name}.md").is_file() == (set(t.needs) <= names), t.name
    again = subprocess.run([sys.executable, str(EXP / "reproduce.py"), "--quick", "--out", str(out), "--only",
                            "memory"], capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))
    assert again.returncode == 0 and "memory: done" in again.stdout and "0 jobs to run" in again.stdout


# -- resume ------------------------------------------------------------------------------------
def test_a_finished_job_is_skipped_and_a_failed_one_rerun(tmp_path, fake):
    out = tmp_path / "runs"
    jobs = [fake("ok", 0), fake("bad", 3)]
    plan, skipped = reproduce.make_plan(jobs, out, False, log=lambda *a: None)
    assert plan == jobs and not skipped
    records = reproduce.run_all(plan, out, False, n_jobs=2)
    assert records["ok"]["status"] == "ran" and records["bad"]["status"] == "failed"
    assert "exit code 3" in records["bad"]["error"]
    assert reproduce.state(jobs[0], out, False) == "done" and reproduce.state(jobs[1], out, False) == "partial"
    assert not (out / "bad" / "DONE").exists()
    plan, skipped = reproduce.make_plan(jobs, out, False, log=lambda *a: None)
    assert plan == [jobs[1]] and skipped == {"ok": "done"}
    reproduce.run_all(plan, out, False, n_jobs=2)
    assert sorted(calls(out)) == ["bad", "bad", "ok"]
    fixed = fake("bad", 0)                                  # other settings: the folder starts afresh
    (out / "bad" / "stale.txt").write_text("from the old settings")
    assert reproduce.state(fixed, out, False) == "new"
    assert reproduce.run_all([fixed], out, False, n_jobs=1)["bad"]["status"] == "ran"
    assert not (out / "bad" / "stale.txt").exists() and reproduce.state(fixed, out, False) == "done"


def test_quick_skips_a_job_whose_data_are_absent_and_the_full_run_does_not(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "no-data-here"))
    job = fake("needs_data", 0, data=("names",))
    plan, skipped = reproduce.make_plan([job], tmp_path, True, log=lambda *a: None)
    assert plan == [] and skipped == {"needs_data": "skipped: no names data (set NPNET_DATA)"}
    (tmp_path / "no-data-here" / "names").mkdir(parents=True)
    (tmp_path / "no-data-here" / "names" / "English.txt").write_text("Smith\n")
    assert reproduce.make_plan([job], tmp_path, True, log=lambda *a: None)[0] == [job]
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "elsewhere"))
    assert reproduce.make_plan([job], tmp_path, False, log=lambda *a: None)[0] == [job]   # the script downloads


def test_exit_zero_without_the_expected_files_is_a_failure(tmp_path, fake):
    job = fake("nosummary", 0, "--no-summary")
    rec = reproduce.run_job(job, tmp_path, False, log=lambda *a: None)
    assert rec["status"] == "failed" and "summary.json" in rec["error"] and not (tmp_path / "nosummary" / "DONE").exists()


def test_force_reruns_a_done_job_and_the_manifest_records_it(tmp_path, fake, monkeypatch):
    job = fake("ok", 0)
    monkeypatch.setattr(reproduce_jobs, "JOBS", [job])
    monkeypatch.setattr(reproduce_jobs, "TABLES", [])
    out, docs = tmp_path / "runs", tmp_path / "docs"
    (docs / "img").mkdir(parents=True)
    for argv in (["--out", str(out)], ["--out", str(out)], ["--out", str(out), "--force"]):
        assert reproduce.main(argv, docs=docs) == 0
    assert calls(out) == ["ok", "ok"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["jobs"]["ok"]["status"] == "ran" and manifest["mode"] == "full"
    assert (docs / "img" / "ok.png").read_bytes() == b"png"              # the figure went to docs/img


# -- tables and markers ------------------------------------------------------------------------
DOC = "# Title\n\nintro\n\n<!-- reproduce:table t1 -->\n| old |\n|---|\n<!-- /reproduce:table -->\n\nafter\n"


def test_replace_table_round_trip():
    table = "| a | b |\n|---|---|\n| 1 | 2 |"
    new = replace_table(DOC, "t1", table)
    assert read_table(new, "t1") == table
    assert new.startswith("# Title\n\nintro\n\n") and new.endswith("\n\nafter\n") and "old" not in new
    assert replace_table(new, "t1", table) == new                          # idempotent
    assert replace_table(new, "t1", "| old |\n|---|") == DOC                # and back
    twice = replace_table(DOC + DOC, "t1", table)
    assert twice.count(table) == 2


def test_a_missing_or_unclosed_marker_is_a_clear_error():
    with pytest.raises(ReproduceError, match=r"doc.md has no marker for table 't2'.*reproduce:table t2"):
        replace_table(DOC, "t2", "| x |", where="doc.md")
    with pytest.raises(ReproduceError, match="no closing"):
        replace_table("<!-- reproduce:table t1 -->\n| x |\n", "t1", "| y |")
    with pytest.raises(ReproduceError, match="no closing"):
        replace_table("<!-- reproduce:table t1 -->\n<!-- reproduce:table t2 -->\n<!-- /reproduce:table -->",
                      "t1", "| y |")


def test_regenerate_writes_figures_and_tables_and_reports_a_missing_marker(tmp_path, fake):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    (docs / "img").mkdir(parents=True)
    (docs / "a.md").write_text(DOC)
    job = fake("ok", 0)
    reproduce.run_job(job, out, False)
    tables = [Table("t1", ("ok",), lambda f: f"| acc |\n|---|\n| {json.loads((f['ok'] / 'summary.json').read_text())['acc']} |"),
              Table("t3", ("ok",), lambda f: "| z |"), Table("t4", ("never",), lambda f: "| w |")]
    res = regenerate([job], tables, {"ok"}, out, True, docs, log=lambda *a: None)
    assert read_table((docs / "a.md").read_text(), "t1") == "| acc |\n|---|\n| 0.5 |"
    assert (docs / "img" / "ok.png").is_file() and (out / "tables" / "t1.md").is_file()
    assert any("t3" in e and "no doc has" in e for e in res["errors"]) and res["waiting"] == ["t4 (needs never)"]
    before = (docs / "a.md").read_text()
    res = regenerate([job], tables[:1], {"ok"}, out, False, docs, log=lambda *a: None)   # --no-docs / --quick
    assert (docs / "a.md").read_text() == before and not res["errors"]


# -- the command line and the job table --------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [(["--only", "memroy"], "unknown job memroy; the jobs are: memory,"),
                                           (["--only", "memory,nope", "--list"], "unknown job nope"),
                                           (["--jobs", "0"], "--jobs must be >= 1")])
def test_bad_arguments_are_usage_errors(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        reproduce.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err


def test_list_shows_commands_figures_and_tables(capsys):
    assert reproduce.main(["--list"]) == 0
    text = capsys.readouterr().out
    for j in reproduce_jobs.JOBS:
        assert f"python experiments/{j.script}" in text and j.name in text
        for dst in j.figures.values():
            assert f"docs/img/{dst}" in text
    assert reproduce.main(["--list", "--only", "sine_teacher"]) == 0
    text = capsys.readouterr().out
    assert "sine.py --train-mode teacher" in text and "memory" not in text


def test_a_job_name_must_be_a_plain_folder_name():
    with pytest.raises(ValueError, match="letters, digits"):
        Job("../escape", "memory.py")


def test_the_job_table_covers_docs_img_and_every_table_has_its_marker():
    names = [j.name for j in reproduce_jobs.JOBS]
    assert len(set(names)) == len(names) and all(n.replace("_", "").isalnum() for n in names)
    assert all((EXP / j.script).is_file() for j in reproduce_jobs.JOBS)
    made = [dst for j in reproduce_jobs.JOBS for dst in j.figures.values()]
    pngs = sorted(p.name for p in (ROOT / "docs" / "img").glob("*.png"))
    assert sorted(made) == pngs, "every PNG in docs/img comes from exactly one job's figures"
    docs = "".join(p.read_text() for p in sorted((ROOT / "docs").rglob("*.md")))
    for t in reproduce_jobs.TABLES:
        assert set(t.needs) <= set(names), t.name
        assert f"<!-- reproduce:table {t.name} -->" in docs, f"no doc has the marker of table {t.name}"


def test_the_job_list_in_docs_reproducing_is_current():
    doc = (ROOT / "docs" / "reproducing.md").read_text()
    assert read_table(doc, "jobs") == reproduce_jobs.jobs_table(), (
        "docs/reproducing.md lists other jobs than reproduce_jobs.JOBS: any full run rebuilds it "
        "(e.g. python experiments/reproduce.py --only memory), or paste reproduce_jobs.jobs_table()")
