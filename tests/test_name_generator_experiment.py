"""Tests for experiments/name_generator.py on a tiny generated names folder (the real data is not
needed): the run folder, val_nats and trigram_nats equal to independent computations, the split
of experiments/names.py, the batches, sampling (seeded, argmax, first letter), the memorised
marks, --generate from the saved run, and usage errors."""
import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import npnet
from npnet.data import stratified_split
from npnet.data.names import ALPHABET

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "name_generator.py"
sys.path.insert(0, str(SCRIPT.parent))                                   # for `import common`, the tools


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = _load("name_generator_experiment", SCRIPT)
import name_generator_tools as tools  # noqa: E402

LANGS = ["Aland", "Borovia", "Castilla"]


def _tiny_names_dir(root: Path) -> Path:
    """Three 'languages' with a visible pattern each (prefix Mc, suffix ov, suffix ez); Aland
    repeats one name, so a held-out name can also be a training name."""
    rng = np.random.default_rng(3)
    letters = "abdeiklmnoprstu"
    folder = root / "names"
    folder.mkdir()
    for lang, (pre, suf) in zip(LANGS, (("Mc", ""), ("", "ov"), ("", "ez"))):
        lines = []
        for _ in range(20):
            core = "".join(rng.choice(list(letters), size=int(rng.integers(1, 5))))
            lines.append(pre + core.capitalize() if pre else (core + suf).capitalize())
        if lang == "Aland":
            lines += ["Mcbain"] * 4
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


TINY = ["--hidden", "8", "--steps", "6", "--batch-size", "8", "--samples", "2", "--languages", "Aland,Borovia",
        "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("namegen")
    data_dir = _tiny_names_dir(root)
    out = root / "run"
    assert gen.main(["--data", str(data_dir), "--out", str(out), *TINY]) == 0
    return data_dir, out


def test_end_to_end_writes_the_run_folder(tiny_run):
    _, out = tiny_run
    for f in ("config.json", "metrics.csv", "summary.json", "checkpoint.npz", "learning_curve.png", "samples.md"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = json.loads((out / "summary.json").read_text())
    for k in ("val_nats", "trigram_nats", "bigram_nats", "unigram_nats", "fourgram_nats", "train_nats",
              "val_nats_unseen", "trigram_nats_unseen", "memorised_fraction", "samples", "wall_s", "steps"):
        assert k in s, k
    assert np.isfinite(s["val_nats"]) and s["val_nats"] > 0 and s["steps"] == 6
    assert s["n_train"] + s["n_heldout"] == 64 and s["n_heldout"] == 4 + 4 + 5        # round(0.2 n) per language
    assert set(s["samples"]) == {"Aland", "Borovia"}
    assert all(len(r["given_first"]) == 2 and len(r["free_first"]) == 2 for r in s["samples"].values())
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and float(rows[-1]["val_loss"]) == pytest.approx(s["val_nats"], rel=1e-6)


def test_trigram_nats_equals_charngram_computed_here(tiny_run):
    data_dir, out = tiny_run
    d = npnet.data.load_names(data_dir)
    ids = npnet.data.names.encode_names(d.names, one_hot=False)
    train, test = stratified_split(d.labels, 0.2, rng=0)
    m = npnet.CharNGram(len(ALPHABET), order=3, n_conditions=3).fit([ids[i] for i in train], d.labels[train])
    s = json.loads((out / "summary.json").read_text())
    assert s["trigram_nats"] == pytest.approx(m.nats([ids[i] for i in test], d.labels[test]), rel=1e-12)


def test_val_nats_equals_the_saved_model_scored_name_by_name(tiny_run):
    """Independently of the batches: each held-out name alone, START + characters in, characters +
    END scored, the language one-hot at every step; the mean over every scored character."""
    data_dir, out = tiny_run
    d = npnet.data.load_names(data_dir)
    _, test = stratified_split(d.labels, 0.2, rng=0)
    model = npnet.load_checkpoint(out / "checkpoint.npz").model
    total, n = 0.0, 0
    for i in test:
        chars = [ALPHABET.index(c) for c in d.names[i]]
        x = np.zeros((1, len(chars) + 1, len(ALPHABET) + 2 + 3), dtype=model.dtype)
        for t, c in enumerate([len(ALPHABET) + 1] + chars):                   # START = V + 1
            x[0, t, c] = 1.0
        x[0, :, len(ALPHABET) + 2 + d.labels[i]] = 1.0
        z = model.predict(x)[0].astype(np.float64)                            # (T + 1, V + 1)
        logp = z - z.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        total -= logp[np.arange(len(chars) + 1), chars + [len(ALPHABET)]].sum()   # END = V
        n += len(chars) + 1
    s = json.loads((out / "summary.json").read_text())
    assert s["val_nats"] == pytest.approx(total / n, rel=1e-5)                # float32 model


def test_the_split_is_the_names_classifier_test_split(tiny_run):
    data_dir, _ = tiny_run
    names = _load("names_experiment_for_split", SCRIPT.parent / "names.py")
    theirs = names.prepare_data(data_dir, 0, 0.1, False, np.float32)
    ours = tools.prepare_data(data_dir, 0)
    np.testing.assert_array_equal(ours["test"], theirs["test"])
    np.testing.assert_array_equal(np.sort(ours["train"]), np.sort(np.concatenate([theirs["train"], theirs["val"]])))


def test_make_batch_shifts_targets_and_gives_the_language_at_every_step(tiny_run):
    data_dir, _ = tiny_run
    d = tools.prepare_data(data_dir, 0)
    i, j = 0, int(np.argmax(d["lengths"]))                                 # two names of different lengths
    x, y, mask = tools.make_batch(d, np.array([i, j]), np.float64)
    n = d["lengths"][i]
    assert mask[0].sum() == n + 1 and mask[1].sum() == d["lengths"][j] + 1
    assert x.shape == (2, d["lengths"][j] + 1, tools.N_SYMBOLS + 3)
    assert np.argmax(x[0, 0, :tools.N_SYMBOLS]) == tools.START
    np.testing.assert_array_equal(np.argmax(x[0, 1:n + 1, :tools.N_SYMBOLS], axis=1), d["ids"][i])
    np.testing.assert_array_equal(y[0, :n + 1], list(d["ids"][i]) + [tools.END])
    assert (x[0, :n + 1, tools.N_SYMBOLS + d["labels"][i]] == 1).all() and (x[0, :n + 1].sum(axis=1) == 2).all()
    assert (x[0, n + 1:] == 0).all()                                          # padding reads nothing


def test_generate_is_seeded_starts_with_the_letter_and_argmax_is_deterministic(tiny_run):
    _, out = tiny_run
    model = npnet.load_checkpoint(out / "checkpoint.npz").model.eval()
    a = tools.generate(model, 1, 3, "K", 4, 1.0, np.random.default_rng(0))
    b = tools.generate(model, 1, 3, "K", 4, 1.0, np.random.default_rng(0))
    assert a == b and all(s.startswith("K") and len(s) <= 20 for s in a)
    greedy = tools.generate(model, 0, 3, "", 3, 0.0, np.random.default_rng(1))
    assert len(set(greedy)) == 1


def test_samples_mark_training_and_heldout_names(tiny_run, monkeypatch):
    data_dir, _ = tiny_run
    d = tools.prepare_data(data_dir, 0)
    seen = sorted(d["train_names"][1])[0]
    held_only = sorted(d["heldout_names"][1] - d["train_names"][1])[0]
    monkeypatch.setattr(tools, "generate", lambda *a, **k: [seen, held_only, "Zzzz", seen])
    table = tools.sample_table(None, d, ["Borovia"], 4, 1.0, 0)
    row = table["samples"]["Borovia"]
    assert row["given_first"] == [seen + "*", held_only + "+", "Zzzz", seen + "*"]
    assert table["memorised_fraction"] == pytest.approx(4 / 8) and table["heldout_fraction"] == pytest.approx(2 / 8)


def test_generate_from_the_saved_run_is_reproducible(tiny_run, capsys):
    data_dir, out = tiny_run
    argv = ["--generate", "--checkpoint", str(out), "--data", str(data_dir), "--languages", "Castilla",
            "--first", "P", "--samples", "3", "--seed", "4"]
    capsys.readouterr()
    assert gen.main(argv) == 0
    first = capsys.readouterr().out
    assert gen.main(argv) == 0
    assert capsys.readouterr().out == first
    row = [line for line in first.splitlines() if line.startswith("| Castilla")]
    assert len(row) == 1 and "(P) P" in row[0]


@pytest.mark.parametrize("argv", [
    ["--hidden", "0"], ["--cell", "transformer"], ["--generate"], ["--checkpoint", "run"], ["--first", "ab"],
    ["--first", "q"], ["--output-dropout", "1.0"], ["--bptt", "3"], ["--temperature", "-1"], ["--lr", "0"],
    ["--data", "/nonexistent/names"], ["--steps", "3", "--epochs", "2"], ["--eval-every", "5"],
    ["--epoch-size", "100"], ["--target", "0.5"], ["--match-params"],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        gen.main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_unknown_language_and_bad_checkpoint_are_usage_errors(tiny_run, tmp_path, capsys):
    data_dir, out = tiny_run
    with pytest.raises(SystemExit) as exc:
        gen.main(["--data", str(data_dir), "--languages", "Klingon", "--out", str(tmp_path / "r"), *TINY[:-3]])
    assert exc.value.code == 2 and "Klingon" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        gen.main(["--generate", "--checkpoint", str(tmp_path / "none.npz"), "--data", str(data_dir)])
    assert exc.value.code == 2 and "--checkpoint" in capsys.readouterr().err


def test_quick_shrinks_only_the_options_left_at_their_defaults(tiny_run, tmp_path):
    data_dir, _ = tiny_run
    for argv, hidden in ((["--quick"], 32), (["--quick", "--hidden", "12"], 12)):
        out = tmp_path / f"q{hidden}"
        assert gen.main(["--data", str(data_dir), "--out", str(out), "--samples", "1", "--quiet", *argv]) == 0
        cfg = json.loads((out / "config.json").read_text())
        assert (cfg["hidden"], cfg["epochs"], cfg["batch_size"]) == (hidden, 1, 64)
        assert json.loads((out / "summary.json").read_text())["hidden"] == hidden


def test_heldout_names_that_are_all_training_names_leave_out_the_unseen_scores(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    for lang, name in (("Aland", "Mcbain"), ("Borovia", "Petrov")):
        (folder / f"{lang}.txt").write_text(f"{name}\n" * 10, encoding="utf-8")
    out = tmp_path / "run"
    assert gen.main(["--data", str(folder), "--out", str(out), "--hidden", "4", "--steps", "2", "--samples", "1",
                     "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["n_heldout"] == 4 and np.isfinite(s["val_nats"]) and np.isfinite(s["trigram_nats"])
    assert "val_nats_unseen" not in s and "trigram_nats_unseen" not in s
