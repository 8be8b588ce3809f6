"""The job table of ``experiments/reproduce.py``: every documented experiment, its tiny --quick
twin, the figures it gives docs/img/ and the results tables the docs build from its run folder.

To add an experiment, append one ``Job`` to JOBS (and, if the docs show a table built from it,
one ``Table`` to TABLES with its builder in ``reproduce_tables.py``); nothing else changes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import reproduce_tables as tables


@dataclass(frozen=True)
class Job:
    """One command of the answer book.

    name      the job's name (--only NAME) and its run folder, OUT/<name>/
    script    the file in experiments/ that runs it
    args      the documented settings (the command of docs/*.md without --out)
    quick     the tiny settings of --quick (a few seconds; must write the same files)
    figures   {file in the run folder: file name in docs/img/}
    expect    other files the run folder must hold when the job succeeded
    data      data sets it needs ("names", "mnist"); --quick skips the job when one is absent
    exclusive run alone, not beside another job (a script that fans out over the cores itself,
              or one with a wall-clock budget that needs the whole machine); --quick ignores it
              (give such a job --jobs 1 and a tiny budget in ``quick``)
    threads   BLAS threads of the job: 1 (the scripts' own choice), or 0 = every core
    est_s     rough wall seconds at the documented settings (order of the runs and the ETA only)
    doc       where the command is documented
    """

    name: str
    script: str
    args: tuple = ()
    quick: tuple = ()
    figures: dict = field(default_factory=dict)
    expect: tuple = ("summary.json",)
    data: tuple = ()
    exclusive: bool = False
    threads: int = 1
    est_s: float = 60.0
    doc: str = "docs/experiments.md"

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):       # the name is a folder under --out
            raise ValueError(f"Job name must be letters, digits, _ or -, got {self.name!r}")

    def argv(self, quick: bool = False) -> list:
        """The arguments after the script name (without --out)."""
        return list(self.quick if quick else self.args)


@dataclass(frozen=True)
class Table:
    """A results table in the docs: ``<!-- reproduce:table NAME -->`` ... ``<!-- /reproduce:table -->``.

    ``build(folders)`` gets {job name: run folder (pathlib.Path)} for the jobs in ``needs`` and
    returns the markdown that goes between the markers; it is rebuilt once all of them are done.
    """

    name: str
    needs: tuple
    build: object


# The tiny settings shared by the Learner-based scripts (as in tests/test_experiments.py).
TINY = ("--hidden", "4", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--quiet")
DIGITS_TINY = ("--steps", "4", "--eval-every", "2", "--digit-steps", "2", "--digit-batch", "16", "--batch-size", "4",
               "--test-seqs", "12", "--eval-seqs", "6", "--conv-channels", "2,4", "--features", "8", "--hidden", "8",
               "--quiet")
NAMES_TINY = ("--hidden", "4", "--quiet")

JOBS = [
    Job("memory", "memory.py", ("--seq-len", "20"),
        ("--seq-len", "7", "--remember", "2", "--symbols", "3", "--test-size", "20", "--eval-size", "8", *TINY),
        figures={"learning_curve.png": "memory_learning_curve.png", "example.png": "memory_example.png"}, est_s=20),
    Job("counting", "counting.py", ("--seq-len", "20"),
        ("--seq-len", "6", "--test-size", "40", "--eval-size", "8", *TINY),
        figures={"learning_curve.png": "counting_learning_curve.png", "confusion.png": "counting_confusion.png"},
        est_s=120),
    *[Job(f"counting_bptt{k}", "counting.py", ("--seq-len", "20", "--bptt", str(k)),
          ("--seq-len", "6", "--bptt", "2", "--test-size", "40", "--eval-size", "8", *TINY), est_s=120)
      for k in (2, 5, 10)],
    Job("counting_regression", "counting.py", ("--seq-len", "20", "--mode", "regression"),
        ("--seq-len", "6", "--mode", "regression", "--test-size", "40", "--eval-size", "8", *TINY),
        expect=("summary.json", "scatter.png"), est_s=100),
    Job("memory_cells", "memory.py", ("--compare-cells", "--hidden", "32", "--jobs", "2"),
        ("--compare-cells", "--hidden", "4", "--steps", "3", "--lrs", "0.01", "--cells", "rnn,lstm", "--jobs", "1",
         "--test-size", "20", "--eval-size", "8", "--batch-size", "4", "--eval-every", "2", "--quiet"),
        figures={"compare.png": "memory_compare_cells.png"}, expect=("compare.csv", "compare.md"),
        exclusive=True, est_s=400),
    Job("first_element", "first_element.py", ("--seq-len", "20"),
        ("--seq-len", "4", "--test-size", "30", "--eval-size", "8", *TINY),
        expect=("summary.json", "learning_curve.png", "scatter.png"), est_s=15),
    Job("first_element_sweep", "first_element.py", ("--sweep",),
        ("--sweep", "--lengths", "2,3", "--reps", "2", "--test-size", "10", "--test-batches", "3", "--eval-size", "4",
         "--jobs", "1", *TINY),
        figures={"accuracy_vs_length.png": "first_element_sweep.png"},
        expect=("summary.json", "sweep.csv", "table.md"), exclusive=True, est_s=450),
    Job("first_element_cells", "first_element.py", ("--sweep", "--cells", "irnn,lstm,gru", "--inits", "default"),
        ("--sweep", "--cells", "lstm", "--inits", "default", "--lengths", "2,3", "--reps", "2", "--test-size", "10",
         "--test-batches", "3", "--eval-size", "4", "--jobs", "1", *TINY),
        figures={"accuracy_vs_length.png": "first_element_cells.png"},
        expect=("summary.json", "sweep.csv", "table.md"), exclusive=True, est_s=450),
    Job("sine_free", "sine.py", (),
        ("--seq-len", "12", "--prime", "5", "--test-size", "10", "--eval-size", "4", *TINY),
        figures={"closed_loop.png": "sine_closed_loop_free.png", "learning_curve.png": "sine_learning_curve_free.png"},
        est_s=40),
    Job("sine_teacher", "sine.py", ("--train-mode", "teacher"),
        ("--train-mode", "teacher", "--seq-len", "12", "--prime", "5", "--test-size", "10", "--eval-size", "4", *TINY),
        figures={"closed_loop.png": "sine_closed_loop_teacher.png"}, est_s=60),
    Job("sine_compare", "sine.py", ("--compare",),
        ("--compare", "--seq-len", "40", "--train-len", "35", "--test-size", "10", "--eval-size", "4", "--jobs", "1",
         *TINY), figures={"compare.png": "sine_compare.png"}, expect=("summary.json", "table.md"),
        exclusive=True, est_s=60),
    Job("names", "names.py", (), ("--steps", "5", "--batch-size", "4", *NAMES_TINY),
        figures={"confusion.png": "names_confusion.png"}, expect=("summary.json", "confusion.csv"),
        data=("names",), est_s=60),
    Job("names_table", "names.py", ("--report", "table", "--jobs", "2"),
        ("--report", "table", "--jobs", "1", "--steps", "3", "--batch-size", "4", *NAMES_TINY),
        expect=("table.csv", "table.md"), data=("names",), exclusive=True, est_s=300),
    Job("names_batch_sizes", "names.py", ("--report", "batch-sizes"),
        ("--report", "batch-sizes", "--epochs", "1", "--subset", "60", "--jobs", "1", "--hidden", "4", "--quiet"),
        figures={"batch_sizes.png": "names_batch_sizes.png"}, expect=("batch_sizes.csv", "table.md"),
        data=("names",), exclusive=True, est_s=250),
    Job("name_generator", "name_generator.py", (),
        ("--hidden", "4", "--steps", "3", "--batch-size", "8", "--samples", "1", "--quiet"),
        figures={"learning_curve.png": "name_generator_curve.png"}, expect=("summary.json", "samples.md"),
        data=("names",), est_s=110, doc="docs/name_generation.md"),
    Job("char_lm", "char_lm.py", ("--visualize",),
        ("--visualize", "--steps", "12", "--hidden", "12", "--embed", "6", "--batch-size", "4", "--seq-len", "16",
         "--eval-every", "4", "--length", "30", "--quiet"),
        figures={"learning_curve.png": "char_lm_learning_curve.png", "gate_saturation.png": "char_lm_gate_saturation.png",
                 "unit_position_in_line.png": "char_lm_unit_position_in_line.png",
                 "unit_speaker-name_line.png": "char_lm_unit_speaker_line.png"},
        expect=("summary.json", "samples.txt", "units.json"), data=("tinyshakespeare",), exclusive=True, threads=0,
        est_s=420, doc="docs/language_models.md"),
    Job("digit_sums", "digit_sums.py", (), DIGITS_TINY,
        figures={"step_accuracy.png": "digit_sums_step_accuracy.png", "examples.png": "digit_sums_examples.png"},
        data=("mnist",), est_s=300),
    Job("digit_sums_objectives", "digit_sums.py", ("--report", "objectives", "--steps", "1500", "--digit-steps", "0"),
        ("--report", "objectives", *DIGITS_TINY, "--digit-steps", "0"), data=("mnist",), est_s=300),
    Job("digit_sums_lengths", "digit_sums.py", ("--report", "lengths", "--conv-channels", "8,16", "--steps", "2000"),
        ("--report", "lengths", "--lengths", "2,3", *DIGITS_TINY), expect=("summary.json", "lengths.png"),
        data=("mnist",), est_s=500),
    Job("digit_sums_grid", "digit_sums.py", ("--report", "grid"),
        ("--report", "grid", "--grid-lengths", "2,3", "--batch-sizes", "2,4", "--grid-images", "48", "--hidden", "8",
         "--features", "8", "--conv-channels", "4", "--test-seqs", "20", "--eval-every", "5", "--jobs", "1", "--quiet"),
        figures={"grid.png": "digit_sums_grid.png"}, expect=("summary.json", "table.md"), data=("mnist",),
        exclusive=True, est_s=300),
    Job("exploding", "exploding.py", (), ("--quick", "--quiet"),
        figures={"mean_abs_vs_seq_len.png": "exploding_mean_abs_vs_seq_len.png",
                 "grad_norm_training.png": "exploding_grad_norm_training.png"},
        expect=("summary.json", "sweep.csv"), exclusive=True, est_s=40, doc="docs/gradients.md"),
    Job("vanishing", "vanishing.py", (), ("--quick", "--quiet"),
        figures={"grad_vs_distance.png": "vanishing_grad_vs_distance.png",
                 "grad_heatmap_training.png": "vanishing_grad_heatmap_training.png",
                 "dx1_vs_seq_len.png": "vanishing_dx1_vs_seq_len.png",
                 "jacobian_products.png": "vanishing_jacobian_products.png"},
        expect=("summary.json", "sweep.csv"), exclusive=True, est_s=100, doc="docs/gradients.md"),
]



def jobs_table(folders=None) -> str:
    """The job list of docs/reproducing.md (from JOBS; no run folder needed)."""
    rows = []
    for j in JOBS:
        tabs = [t.name for t in TABLES if j.name in t.needs]
        notes = [n for n, on in (("runs alone", j.exclusive), (f"needs the {' and '.join(j.data)} data", j.data)) if on]
        rows.append([j.name, f"`python experiments/{' '.join([j.script, *j.args])}`",
                     ", ".join(f"`{d}`" for d in j.figures.values()), ", ".join(tabs), "; ".join(notes)])
    return tables.markdown(["job", "command", "figures (docs/img/)", "tables", "notes"], rows)


TABLES = [
    Table("jobs", (), jobs_table),
    Table("defaults", ("memory", "counting", "first_element", "sine_free", "names", "digit_sums", "exploding",
                       "vanishing"), tables.defaults),
    Table("counting_variants", ("counting", "counting_bptt2", "counting_bptt5", "counting_bptt10",
                                "counting_regression"), tables.counting_variants),
    Table("memory_cells", ("memory_cells",), tables.written("compare.md")),
    Table("first_element_sweep", ("first_element_sweep",), tables.written()),
    Table("first_element_cells", ("first_element_cells",), tables.written()),
    Table("names_table", ("names_table",), tables.written()),
    Table("names_batch_sizes", ("names_batch_sizes",), tables.written()),
    Table("sine_compare", ("sine_compare",), tables.written()),
    Table("digit_sums_grid", ("digit_sums_grid",), tables.written()),
    Table("char_lm", ("char_lm",), tables.char_lm),
    Table("char_lm_units", ("char_lm",), tables.char_lm_units),
    Table("digit_sums_objectives", ("digit_sums_objectives",), tables.digit_sums_runs),
    Table("digit_sums_lengths", ("digit_sums_lengths",), tables.digit_sums_runs),
    Table("exploding", ("exploding",), tables.exploding),
    Table("vanishing", ("vanishing",), tables.vanishing),
]
