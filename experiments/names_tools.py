"""What ``python experiments/names.py`` does besides training: ``--predict NAME`` from a saved run,
and the exercise's two reports (``--report table``: test accuracy of several models through
npnet.sweep.run_sweep; ``--report batch-sizes``: learning curves for batch sizes 1, 10 and 30,
in names_batch.py).
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import names_batch  # noqa: E402
import npnet  # noqa: E402

SPLITS = (("train_", "-", "train"), ("val_", "s--", "validation"), ("test_", "o-", "test"))


def add_options(g) -> None:
    """The prediction and report options of names.py's parser (argument group ``g``)."""
    g.add_argument("--predict", metavar="NAME", nargs="+", default=None,
                   help="print the top 3 languages of NAME(s) from --checkpoint (no training)")
    g.add_argument("--checkpoint", default=None, help="checkpoint file or run folder for --predict")
    g.add_argument("--report", choices=("table", "batch-sizes"), default=None,
                   help="table: test accuracy of 1-/2-layer LSTMs (H=64, 128) and a 1-layer GRU; "
                        "batch-sizes: batch sizes 1, 10, 30 for the same epochs (--epochs, default "
                        f"{names_batch.REPORT_EPOCHS}) with a shared and a batch-scaled lr: per-epoch train/test "
                        "loss and test accuracy (names_batch.py; reports ignore --time-limit)")
    g.add_argument("--subset", type=common.nonneg_int, default=names_batch.SUBSET,
                   help="--report batch-sizes: train on a stratified subset of this many training names (0: all)")
    g.add_argument("--jobs", type=int, default=-1, help="parallel runs of a report (-1: one per core)")


def predict(checkpoint, names, k: int = 3):
    """Top-k (language, probability) for each name, from a checkpoint written by :func:`train`
    (a file, or a run folder holding ``checkpoint.npz``)."""
    p = Path(checkpoint)
    p = p / "checkpoint.npz" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p} (give --checkpoint FILE.npz or a run folder)")
    from npnet.data.names import encode_names
    ck = npnet.load_checkpoint(p)
    languages = (ck.extra or {}).get("languages")
    if not languages:
        raise ValueError(f"{checkpoint} is not a names checkpoint (no languages in its extra data)")
    model = ck.model.eval()
    loss = npnet.SoftmaxCrossEntropyLoss(dtype=model.dtype)
    out = []
    for name in names:
        x = encode_names([name], dtype=model.dtype)[0][None]                 # (1, T, 56)
        logits, _ = model.fprop(x)                                           # (1, K)
        model.clear_cache()
        prob = loss.probs(logits)[0]                                         # (K,)
        top = np.argsort(-prob, kind="stable")[:k]
        out.append([(languages[i], float(prob[i])) for i in top])
    return out


def write_run(out: Path, cfg, data, res, argv) -> None:
    """config.json, summary.json, learning_curves.png, confusion.png and confusion.csv."""
    import names
    s = res["summary"]
    common.write_json(out / "config.json", {
        "task": names.TASK, "argv": argv, **names._json_cfg(cfg), "languages": list(data["languages"]),
        "split": {"test_fraction": 0.2, "val_fraction_of_train": cfg["val_fraction"],
                  "split_seed": cfg["split_seed"], "dedup": cfg["dedup"]},
        "npnet_version": npnet.__version__, "commit": common._git_commit(),
        "python": sys.version.split()[0], "numpy": np.__version__})
    common.write_json(out / "summary.json", s)
    title = (f"{cfg['layers']}x{cfg['cell'].upper()} H={cfg['hidden']} B={cfg['batch_size']} "
             f"{cfg['optimizer']} lr={cfg['lr']:g}: test acc {s['test_accuracy']:.3f} (best epoch {s['best_epoch']})")
    common.plot_learning_curve(res["history"], out / "learning_curves.png", "accuracy", x="epoch",
                               series=SPLITS, metric_key="accuracy", loss_name="cross-entropy loss", title=title)
    C = common.confusion_matrix(res["true"], res["pred"], len(data["languages"]))
    common.write_table(out / "confusion.csv", C.tolist(), fields=data["languages"])
    common.plot_confusion(C, data["languages"], out / "confusion.png",
                          f"test set, best model (accuracy {s['test_accuracy']:.3f})")


def print_predictions(parser, checkpoint, names) -> int:
    """``--predict``: one line per name, its top 3 languages (a bad checkpoint: usage error)."""
    try:
        results = predict(checkpoint, names)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    for name, top in zip(names, results):
        print(f"{name}: " + ", ".join(f"{lang} {prob:.3f}" for lang, prob in top))
    return 0


def report(a, cfg: dict, out: Path, data_dir) -> None:
    """Run the report ``a.report`` with the run configuration ``cfg``."""
    if a.report == "table":
        report_table(cfg, out, data_dir, a.jobs)
    else:
        names_batch.report_batch_sizes(a, cfg, out, data_dir)

def run_config(out_dir=None, data_dir=None, quiet=True, **overrides) -> dict:
    import names
    """Train one configuration (DEFAULTS updated by ``overrides``); returns its summary.
    Module-level so that npnet.sweep can pickle it; with ``out_dir`` the run folder is written."""
    t0 = time.perf_counter()
    cfg = dict(names.DEFAULTS, **overrides)
    cfg["dtype"] = np.dtype(cfg["dtype"])
    data = names.prepare_data(data_dir, cfg["split_seed"], cfg["val_fraction"], cfg["dedup"], cfg["dtype"])
    out = Path(out_dir) if out_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    res = names.train(cfg, data, out, log=(lambda *a: None) if quiet else print, t0=t0)
    if out is not None:
        write_run(out, cfg, data, res, None)
    return res["summary"]


TABLE_CONFIGS = [
    {"cell": "lstm", "layers": 1, "hidden": 64},
    {"cell": "lstm", "layers": 1, "hidden": 128},
    {"cell": "lstm", "layers": 2, "hidden": 64},
    {"cell": "lstm", "layers": 2, "hidden": 128},
    {"cell": "gru", "layers": 1, "hidden": 128},
]


def report_table(base: dict, out: Path, data_dir, jobs: int = 1) -> list:
    """Test accuracy of 1-/2-layer LSTMs (H=64, 128) and a 1-layer GRU; other options from ``base``.

    Runs through npnet.sweep.run_sweep (``jobs`` processes; results resume from table.csv).
    No time limit: the bigger models get the same epochs as the small ones.
    """
    import names
    from npnet.training.sweep import run_sweep
    here = os.path.dirname(os.path.abspath(__file__))          # the workers import this module afresh
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), os.environ.get("PYTHONPATH", "")])
    configs = []
    for c in TABLE_CONFIGS:
        name = f"{c['cell']}-L{c['layers']}-H{c['hidden']}"
        configs.append({**names._json_cfg(base), **c, "time_limit": 0.0, "out_dir": str(out / name),
                        "data_dir": None if data_dir is None else str(data_dir)})
    rows = run_sweep(run_config, configs, out / "table.csv", n_jobs=jobs, progress=False,
                     on_result=lambda r: print(f"  {r['cell']} L={r['layers']} H={r['hidden']}: {r.get('status')} "
                                               f"test acc {r.get('test_accuracy', '')} {r.get('error', '')}",
                                               flush=True))
    lines = ["| cell | layers | hidden | params | test accuracy | val accuracy | best epoch | epochs | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['cell']} | {r['layers']} | {r['hidden']} | | failed: {r.get('error')} | | | | |")
            continue
        lines.append(f"| {r['cell'].upper()} | {r['layers']} | {r['hidden']} | {r['params']} | "
                     f"{float(r['test_accuracy']):.4f} | {float(r['val_accuracy']):.4f} | {r['best_epoch']} | "
                     f"{r['epochs_run']} | {float(r['wall_s']):.0f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows
