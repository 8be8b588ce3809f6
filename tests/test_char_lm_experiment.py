"""Tests for experiments/char_lm.py and char_lm_viz.py: a tiny end-to-end run on a made-up play,
its val_nats against a plain character-by-character loop over model.step, --generate from the
saved run (seeded, temperature 0 = argmax), --visualize (PNGs, the recomputed LSTM gates agree
with the cell's outputs), the features, the learning-rate budget and usage errors.
"""
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import npnet
from npnet.data.text import CharVocab, split_text

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "char_lm.py"
sys.path.insert(0, str(SCRIPT.parent))                                   # for the script's `import common`


def _load_script():
    spec = importlib.util.spec_from_file_location("char_lm_experiment", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


char_lm = _load_script()
import char_lm_viz  # noqa: E402  (beside the script, on sys.path above)


def _tiny_play(n_speeches: int = 60) -> str:
    """A made-up play in Tiny Shakespeare's layout: NAME:, lines of words, a blank line."""
    rng = np.random.default_rng(3)
    words = ["my", "lord", "good", "the", "king", "is", "dead", "long", "live", "sweet", "night", "and"]
    out = []
    for _ in range(n_speeches):
        out.append(str(rng.choice(["ROMEO", "JULIET", "FIRST LORD"])) + ":")
        for _ in range(int(rng.integers(1, 4))):
            line = " ".join(rng.choice(words, size=int(rng.integers(3, 8))))
            out.append(line.capitalize() + str(rng.choice([",", ".", "?", "!"])))
        out.append("")
    return "\n".join(out) + "\n"


TINY = ["--any-text", "--steps", "12", "--hidden", "12", "--embed", "6", "--batch-size", "4", "--seq-len", "16",
        "--eval-every", "4", "--length", "30", "--prime", "ROMEO:", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("char_lm")
    data = root / "play.txt"
    data.write_text(_tiny_play(), encoding="utf-8")
    out = root / "run"
    summary = char_lm.main(["--data", str(data), "--out", str(out), "--visualize"] + TINY)
    return {"data": data, "out": out, "summary": summary}


def test_run_folder_and_summary_keys(tiny_run):
    out, s = tiny_run["out"], tiny_run["summary"]
    for name in ("config.json", "metrics.csv", "summary.json", "checkpoint.npz", "learning_curve.png", "samples.txt"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "summary.json").read_text())
    for key in ("val_nats", "val_bpc", "val_perplexity", "samples", "steps", "seconds", "seconds_per_step",
                "unigram_nats", "bigram_nats"):
        assert key in saved, key
    assert saved["steps"] == 12
    assert math.isclose(saved["val_bpc"], saved["val_nats"] / math.log(2), rel_tol=1e-12)
    assert math.isclose(saved["val_perplexity"], math.exp(saved["val_nats"]), rel_tol=1e-12)
    assert sorted(saved["samples"]) == ["0.5", "0.8", "1"]
    assert all(v.startswith("ROMEO:") and len(v) == len("ROMEO:") + 30 for v in saved["samples"].values())
    assert saved["val_nats"] == s["val_nats"]
    rows = [r.split(",") for r in (out / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("eval_loss")
    assert [int(r[0]) for r in rows[1:]] == [2, 4, 6, 8, 10, 12]          # log_every = gcd(10, eval_every, steps)
    assert [int(r[0]) for r in rows[1:] if r[col]] == [4, 8, 12]          # validated every 4 steps and at the end


def test_val_nats_equals_a_plain_loop_over_characters(tiny_run):
    """Independent of TextStreams and stream_nats: B streams cut by hand, model.step one character
    at a time, the state carried, log-softmax in float64."""
    cfg = json.loads((tiny_run["out"] / "config.json").read_text())
    ck = npnet.load_checkpoint(tiny_run["out"] / "checkpoint.npz")
    model, vocab = ck.model, CharVocab(ck.extra["chars"])
    text = tiny_run["data"].read_text(encoding="utf-8")
    val = split_text(vocab.encode(text), cfg["val_fraction"])[1]
    B = cfg["batch_size"]
    L = (len(val) - 1) // B
    total, n = 0.0, 0
    for b in range(B):
        state = None
        for t in range(L):
            y, state = model.step(val[b * L + t: b * L + t + 1], state)       # (1, V) logits
            z = y[0].astype(np.float64)
            total += -(z[val[b * L + t + 1]] - z.max() - np.log(np.exp(z - z.max()).sum()))
            n += 1
    assert math.isclose(tiny_run["summary"]["val_nats"], total / n, rel_tol=2e-6)


def test_generate_from_checkpoint_seeded_and_greedy(tiny_run, capsys):
    argv = ["--generate", "--checkpoint", str(tiny_run["out"]), "--prime", "JULIET:", "--length", "25",
            "--temperature", "0", "1.0"]
    char_lm.main(argv)
    first = capsys.readouterr().out
    char_lm.main(argv)
    assert capsys.readouterr().out == first                                # fixed seed: the same text
    model, vocab, _ = char_lm.load_run(tiny_run["out"] / "checkpoint.npz")
    ids, state = list(vocab.encode("JULIET:")), None
    y, state = model.step(np.array(ids[:1]), None)
    for c in ids[1:]:
        y, state = model.step(np.array([c]), state)
    for _ in range(25):                                                    # greedy by hand
        ids.append(int(np.argmax(y[0])))
        y, state = model.step(np.array(ids[-1:]), state)
    greedy = vocab.decode(ids)
    assert f"--- temperature 0\n{greedy}\n" in first
    assert "--- temperature 1\nJULIET:" in first


def test_visualize_writes_the_pictures(tiny_run, tmp_path):
    found = tiny_run["summary"]["visualize"]
    assert found["units"] and all((tiny_run["out"] / u["png"]).is_file() for u in found["units"])
    assert (tiny_run["out"] / "gate_saturation.png").is_file()
    assert all(-1.0 <= u["r"] <= 1.0 for u in found["units"])
    res = char_lm.main(["--visualize", "--checkpoint", str(tiny_run["out"]), "--data", str(tiny_run["data"]),
                        "--any-text", "--out", str(tmp_path)])            # a saved run, no training
    assert [u["unit"] for u in res["units"]] == [u["unit"] for u in found["units"]]
    assert (tmp_path / "gate_saturation.png").is_file() and (tmp_path / "units.json").is_file()


def test_recomputed_gates_agree_with_the_cell(rng):
    """h_t = o_t * tanh(c_t) with the gates and c recomputed from the cell's parameters, and the
    layer outputs equal the model's own forward pass."""
    V = 7
    model = npnet.SequenceModel(5, 6, num_layers=2, output_size=V, read_in=npnet.Embedding(V, 5, rng=rng), rng=rng)
    ids = rng.integers(0, V, size=(3, 11))
    units, gates = char_lm_viz.activations(model, ids)
    for l in (0, 1):
        H = units[f"layer {l} h"]
        np.testing.assert_allclose(H, gates[l]["output"] * units[f"layer {l} tanh c"], rtol=1e-12, atol=1e-14)
    y, _ = model.fprop(ids)
    model.clear_cache()
    np.testing.assert_allclose(units["layer 1 h"] @ model.read_out.params["W"] + model.read_out.params["b"], y,
                               rtol=1e-12, atol=1e-14)


def test_features_by_hand():
    f = char_lm_viz.features("AB:\nHi yo.\n")
    np.testing.assert_array_equal(f["position in line"], [1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 0])
    np.testing.assert_array_equal(f["speaker-name line"], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(f["start of word"], [1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(f["position in word"], [0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(f["after . ? !"], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(f["line of the speech"], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1])


def test_budget_cosine_schedule():
    b = char_lm.Budget(steps=100, seconds=0, schedule="cosine", end=0.1)
    assert b.factor(0) == 1.0 and math.isclose(b.factor(100), 0.1) and math.isclose(b.factor(50), 0.55)
    assert math.isclose(char_lm.Budget(100, 0, "exponential", 0.01).factor(50), 0.1)
    assert char_lm.Budget(100, 0, "constant", 0.01, warmup=10).factor(4) == 0.5


@pytest.mark.parametrize("argv, message", [
    (["--target", "0.5"], "--target"),
    (["--dropout", "1.5"], "--dropout"),
    (["--generate"], "--generate needs --checkpoint"),
    (["--checkpoint", "x"], "--checkpoint is for"),
    (["--data", "/no/such/file.txt"], "--data"),
    (["--temperature", "-1"], "--temperature"),
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--time-limit", "0"], "give a budget"),
    (["--cell", "transformer"], "--cell"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        char_lm.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_prime_or_missing_run_is_a_usage_error(tiny_run, tmp_path, capsys):
    for argv, message in ((["--checkpoint", str(tiny_run["out"]), "--prime", "Z#"], "--prime 'Z#'"),
                          (["--checkpoint", str(tmp_path)], "no checkpoint at")):
        with pytest.raises(SystemExit) as exc:
            char_lm.main(["--generate"] + argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
    out = tmp_path / "never"                                              # before any training
    with pytest.raises(SystemExit) as exc:
        char_lm.main(["--data", str(tiny_run["data"]), "--out", str(out)] + TINY + ["--prime", "Q#"])
    assert exc.value.code == 2 and "--prime 'Q#'" in capsys.readouterr().err and not out.exists()


def test_help_as_a_user_runs_it_shows_every_default():
    import os
    import subprocess
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60,
                          env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    entries, cur = [], None
    for line in proc.stdout.splitlines():              # an option's entry: its line and the indented rest
        if re.match(r"^  -", line):
            cur = [line]
            entries.append(cur)
        elif cur is not None and line.startswith("   "):
            cur.append(line)
        else:
            cur = None
    assert len(entries) > 30
    missing = [e[0].split()[0] for e in entries if "(default:" not in " ".join(e) and not e[0].strip().startswith("-h")]
    assert not missing, missing
    for option in ("--data", "--generate", "--visualize", "--prime", "--temperature", "--time-limit"):
        assert option in proc.stdout


def test_random_windows_are_consecutive_within_a_pass():
    ids = np.arange(1000)
    rng = np.random.default_rng(0)
    chunks = list(char_lm.windows(rng, ids, 3, 5, 4))                     # B=3 windows, T=5, K=4 chunks
    assert len(chunks) == 4 and all(x.shape == y.shape == (3, 5) for x, y in chunks)
    for (x0, _), (x1, _) in zip(chunks, chunks[1:]):
        np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)            # chunk k+1 continues row b
    for x, y in chunks:
        np.testing.assert_array_equal(y, x + 1)                           # the next character
        np.testing.assert_array_equal(np.diff(x, axis=1), 1)
    assert chunks[-1][1].max() <= 999
    again = list(char_lm.windows(np.random.default_rng(0), ids, 3, 5, 4))
    assert all((a[0] == b[0]).all() for a, b in zip(chunks, again))      # seeded
