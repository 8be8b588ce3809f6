"""Generate surnames by language with a character-level recurrent network, against n-gram baselines.

The names data set (18 languages), split as experiments/names.py splits it (stratified by
language, 20 % held out). The model reads START c_1 .. c_n, each step with the language one-hot
beside the character (PyTorch's "Generating names with a character-level RNN"), and predicts
c_1 .. c_n END; it is trained with npnet.Learner on the training names only. Reported: held-out
nats per character (END included) of the RNN beside interpolated n-gram models conditioned on the
language (npnet.CharNGram) fit on the same training names, and sampled names per language with the
memorised ones marked.

    python experiments/name_generator.py --data ../shared/data/names
    python experiments/name_generator.py --generate --checkpoint runs/name_generator-... --temperature 0.5
"""
from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:       # imported from elsewhere (tests)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  first: pins BLAS to one thread before numpy loads

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import name_generator_tools as tools  # noqa: E402
import npnet  # noqa: E402
from npnet.data import Stream  # noqa: E402

TASK = "name_generator"
# Defaults measured on the names data (docs/name_generation.md): a 1-layer LSTM, H=128, Adam 1e-2
# decaying 10x over 8 epochs (held-out nats level off after ~8; 3e-3 was far slower), batches of 32
# names of similar length, dropout 0.1 before the read-out, float32. About 2 minutes on one core.
DEFAULTS = dict(cell="lstm", hidden=128, layers=1, batch_size=32, epochs=8, lr=1e-2, lr_decay=0.1,
                optimizer="adam", clip=5.0, output_dropout=0.1, seed=0, split_seed=0, dtype="float32")
QUICK = dict(hidden=32, epochs=1, batch_size=64)


def train(cfg: dict, data: dict, out: Path, say=print, quiet: bool = False) -> dict:
    """Fit the language-conditioned model on the training names (npnet.Learner; the held-out
    names are evaluated after every epoch for the curve, never used for a choice). ``steps``
    (if set) stops early. Returns {"model", "optimizer", "learner", "history", "train_s"}."""
    K = len(data["languages"])
    model = npnet.SequenceModel(tools.N_SYMBOLS + K, cfg["hidden"], num_layers=cfg["layers"], cell=cfg["cell"],
                                output_size=tools.N_OUT, output_dropout=cfg["output_dropout"],
                                dtype=cfg["dtype"], rng=common.seed_rng(cfg["seed"], "model"))
    learner = npnet.Learner(model, npnet.SoftmaxCrossEntropyLoss(dtype=cfg["dtype"]), cfg["optimizer"],
                            lr=cfg["lr"], clip=cfg["clip"] or None, metric="accuracy",
                            progress=not quiet, tensorboard=False)
    heldout = tools.eval_batches(data, data["test"], cfg["dtype"])
    per_epoch = -(-len(data["train"]) // cfg["batch_size"])
    total = cfg["steps"] or per_epoch * cfg["epochs"]
    records = common.EpochRecords(heldout, None, cfg["steps"], out / "metrics.csv",
                                  log=lambda _: say(_epoch_line(records.history[-1])))
    callbacks = [cb for cb in (records, common.lr_schedule(learner.optimizer, cfg["lr_decay"], total)) if cb]
    stream = Stream(tools.train_batches, common.seed_rng(cfg["seed"], "train"), data, cfg["batch_size"], cfg["dtype"])
    t0 = time.perf_counter()
    learner.fit(stream, epochs=cfg["epochs"], eval_batches=heldout, callbacks=callbacks)
    return {"model": model, "optimizer": learner.optimizer, "learner": learner, "history": records.history,
            "train_s": time.perf_counter() - t0, "heldout": heldout}


def _epoch_line(e: dict) -> str:
    return (f"epoch {e['epoch']:2d}  step {e['step']:5d}  train {e['train_loss']:.4f}  held-out "
            f"{e['val_loss']:.4f} nats/char  (next-char accuracy {e['val_accuracy']:.3f})  {e['seconds']:.0f} s")


def evaluate(cfg: dict, data: dict, res: dict) -> dict:
    """The numbers of summary.json: RNN nats per character on the held-out names (all, and those
    not among the training names of their language) and on the training names, and the n-gram
    baselines on the same parts."""
    learner, dt = res["learner"], cfg["dtype"]
    unseen = tools.unseen_heldout(data)
    out = {"val_nats": learner.evaluate(res["heldout"])["loss"],
           "train_nats": learner.evaluate(tools.eval_batches(data, data["train"], dt))["loss"]}
    if len(unseen):                                    # (every held-out name may also be a training name)
        out["val_nats_unseen"] = learner.evaluate(tools.eval_batches(data, unseen, dt))["loss"]
    out.update(tools.ngram_nats(data, parts={"": data["test"], **({"_unseen": unseen} if len(unseen) else {})}))
    n_chars = {k: int(sum(data["lengths"][data[k]]) + len(data[k])) for k in ("train", "test")}
    out.update({"n_train": len(data["train"]), "n_heldout": len(data["test"]), "n_heldout_unseen": len(unseen),
                "train_chars": n_chars["train"], "heldout_chars": n_chars["test"]})
    return out


# -- command line ------------------------------------------------------------------------------
def parser():
    d = DEFAULTS
    p = common.make_parser(
        TASK, "Generate surnames by language with a character-level RNN (the language one-hot at every "
              "step) trained on the training split of the names data; held-out nats per character (END "
              "included) beside n-gram baselines conditioned on the language; samples per language with "
              "memorised names marked (*). Writes a run folder: config.json, metrics.csv, summary.json "
              "(val_nats, trigram_nats, ...), checkpoint.npz, learning_curve.png, samples.md.",
        hidden=d["hidden"], cell=d["cell"], batch_size=d["batch_size"], steps=None, lr=d["lr"],
        optimizer=d["optimizer"], clip=d["clip"], dtype=d["dtype"], eval_every=None, lr_decay=d["lr_decay"])
    p.epilog = ("Data: --data DIR, else $NPNET_DATA/names, else ~/.cache/npnet/names. Held out: the 20 % test "
                "split of experiments/names.py (--split-seed); an epoch is one pass over the training names; "
                "--steps stops earlier. Samples: * = a training name of that language, + = a held-out one.")
    p.set_defaults(epoch_size=None)                    # an epoch is one pass over the training names
    g = p.add_argument_group("name generation")
    g.add_argument("--data", default=None, help="folder of Language.txt files (None: see below)")
    g.add_argument("--split-seed", type=common.nonneg_int, default=d["split_seed"], help="seed of the held-out split")
    g.add_argument("--output-dropout", type=float, default=d["output_dropout"],
                   help="dropout on the recurrent outputs before the read-out (training only)")
    g.add_argument("--languages", type=common.str_list(), default=None,
                   help="languages to sample, comma-separated (None: those of " + ",".join(tools.DEFAULT_LANGUAGES) + " in the data)")
    g.add_argument("--first", default=None, help="the given first letter, A-Z (None: each language's most common)")
    g.add_argument("--samples", type=common.positive_int, default=5, help="names per language and kind of start")
    g.add_argument("--temperature", type=common.nonneg_float, default=0.8, help="sampling temperature (0: argmax)")
    g.add_argument("--generate", action="store_true", help="only sample from --checkpoint (no training)")
    g.add_argument("--checkpoint", default=None, help="a run folder or its checkpoint.npz, for --generate")
    g.add_argument("--quick", action="store_true",
                   help="small settings for a smoke test: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    return p


def check(a) -> None:
    """Cross-option checks; a ValueError becomes argparse's usage error (exit 2)."""
    if not 0.0 <= a.output_dropout < 1.0:
        raise ValueError(f"--output-dropout must be in [0, 1), got {a.output_dropout}")
    if not 0.0 < a.lr_decay <= 1.0:
        raise ValueError(f"--lr-decay must be in (0, 1], got {a.lr_decay}")
    for opt, val in (("--bptt", a.bptt), ("--epoch-size", a.epoch_size),
                     ("--eval-every", a.eval_every), ("--target", a.target)):
        if val is not None:
            raise ValueError(f"{opt} does not apply here: a name is one sequence, an epoch one pass over "
                             "the training names, evaluated after each epoch")
    if a.match_params or a.no_early_stop:
        raise ValueError("--match-params / --no-early-stop do not apply to name generation")
    if a.first is not None and (len(a.first) != 1 or a.first not in tools.ALPHABET[26:52]):
        raise ValueError(f"--first must be one capital letter A-Z, got {a.first!r}")
    if a.generate and a.checkpoint is None:
        raise ValueError("--generate needs --checkpoint RUN (a run folder or its checkpoint.npz)")
    if a.checkpoint is not None and not a.generate:
        raise ValueError("--checkpoint is for --generate (sampling from a saved run)")
    common.check_data_dir("--data", a.data, "names")


def config_from_args(a, p) -> dict:
    cfg = {k: getattr(a, k) for k in DEFAULTS if k != "epochs"}
    cfg["epochs"] = a.epochs or (None if a.steps else DEFAULTS["epochs"])
    if a.steps and not a.epochs:
        cfg["epochs"] = 10 ** 6                        # --steps alone: as many passes as it takes
    if a.quick:                                        # QUICK where the option was left at its default
        cfg.update({k: v for k, v in QUICK.items() if getattr(a, k) in (p.get_default(k), None)})
    cfg.update(steps=a.steps, dtype=np.dtype(a.dtype), temperature=a.temperature)
    return cfg


def pick_languages(p, a, data) -> list:
    if a.languages is None:
        return [lang for lang in tools.DEFAULT_LANGUAGES if lang in data["languages"]] or list(data["languages"])
    bad = [lang for lang in a.languages if lang not in data["languages"]]
    if bad:
        p.error(f"--languages: {', '.join(bad)} not in the data ({', '.join(data['languages'])})")
    return a.languages


def load_data(p, a, split_seed: int) -> dict:
    try:
        return tools.prepare_data(a.data, split_seed)
    except npnet.NpnetError as exc:
        p.exit(1, f"{TASK}: {exc}\n  give --data DIR, or set NPNET_DATA to the folder that holds names/\n")


def generate_from(p, a) -> int:
    """--generate: sample from a saved run (its split seed gives the training names to mark)."""
    path = Path(a.checkpoint)
    path = path / "checkpoint.npz" if path.is_dir() else path
    try:
        ck = npnet.load_checkpoint(path)
    except (OSError, npnet.NpnetError) as exc:
        p.error(f"--checkpoint {a.checkpoint}: {exc}")
    extra = ck.extra or {}
    if extra.get("task") != TASK:
        p.error(f"--checkpoint {a.checkpoint} is not a {TASK} run (task {extra.get('task')!r})")
    data = load_data(p, a, int(extra["split_seed"]))
    if list(data["languages"]) != extra["languages"]:
        p.error(f"the data's languages differ from the run's: {extra['languages']}")
    table = tools.sample_table(ck.model.eval(), data, pick_languages(p, a, data), a.samples, a.temperature,
                               a.seed, a.first)
    print(tools.samples_markdown(table), end="")
    return 0


def main(argv=None) -> int:
    t0 = time.perf_counter()
    p = parser()
    a = common.parse(p, argv, check)
    if a.generate:
        return generate_from(p, a)
    cfg = config_from_args(a, p)
    say = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    data = load_data(p, a, cfg["split_seed"])
    languages = pick_languages(p, a, data)
    out = Path(a.out) if a.out else Path("runs") / f"{TASK}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    json_cfg = {**cfg, "dtype": cfg["dtype"].name}
    common.write_json(out / "config.json", {
        "task": TASK, "argv": list(sys.argv[1:] if argv is None else argv), **json_cfg, "languages": list(data["languages"]),
        "split": {"heldout_fraction": 0.2, "split_seed": cfg["split_seed"], "as": "experiments/names.py test split"},
        "npnet_version": npnet.__version__, "commit": common._git_commit(), "numpy": np.__version__})
    say(f"{len(data['names'])} names, {len(data['languages'])} languages; train {len(data['train'])}, "
        f"held out {len(data['test'])}; {cfg['cell']} H={cfg['hidden']}, {cfg['epochs'] if not cfg['steps'] else cfg['steps']} "
        f"{'epochs' if not cfg['steps'] else 'steps'}")
    res = train(cfg, data, out, say, quiet=a.quiet)
    s = evaluate(cfg, data, res)
    table = tools.sample_table(res["model"].eval(), data, languages, a.samples, cfg["temperature"], cfg["seed"], a.first)
    npnet.save_checkpoint(out / "checkpoint.npz", res["model"], res["optimizer"], res["learner"].step, extra={
        "task": TASK, "languages": list(data["languages"]), "split_seed": cfg["split_seed"], "val_nats": s["val_nats"],
        "config": json_cfg})
    s.update({"task": TASK, "headline": "val_nats", "baseline": s["trigram_nats"],
              "baseline_name": "trigram (Witten-Bell, per language)", "beats_trigram": s["val_nats"] < s["trigram_nats"],
              "cell": cfg["cell"], "hidden": cfg["hidden"], "params": int(res["model"].num_params),
              "seed": cfg["seed"], "split_seed": cfg["split_seed"], "steps": res["learner"].step,
              "epochs_run": len(res["history"]), "train_s": res["train_s"], "wall_s": time.perf_counter() - t0,
              "temperature": cfg["temperature"], **table})
    common.write_json(out / "summary.json", s)
    (out / "samples.md").write_text(tools.samples_markdown(table))
    tools.plot_curve(res["history"], [("trigram per language", s["trigram_nats"]), ("4-gram per language", s["fourgram_nats"])],
                     out / "learning_curve.png", f"1x{cfg['cell'].upper()} H={cfg['hidden']}: held-out "
                     f"{s['val_nats']:.3f} nats/char vs trigram {s['trigram_nats']:.3f}")
    say(tools.samples_markdown(table))
    print(f"{TASK}: val_nats {s['val_nats']:.4f} (trigram {s['trigram_nats']:.4f}, 4-gram {s['fourgram_nats']:.4f}, "
          f"bigram {s['bigram_nats']:.4f}) {cfg['cell']} H={cfg['hidden']}, {s['steps']} steps, "
          f"memorised {100 * s['memorised_fraction']:.0f} %, {s['wall_s']:.0f} s -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
