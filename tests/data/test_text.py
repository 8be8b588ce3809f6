"""npnet.data.text: the Tiny Shakespeare loader and its sha256 check (shared copy, corrupt copy,
download from a local HTTP server), the character vocabulary, the split, the B-stream chunks
(consecutive chunks are consecutive text), the nats helpers against an independent computation,
and the unigram/bigram baselines on a toy corpus against hand-computed values."""
import hashlib
import math

import numpy as np
import pytest

import npnet
from npnet.data import (CharVocab, TextStreams, bigram_nats, bits_per_char, find_data_dir,
                        load_tinyshakespeare, nats_per_char, perplexity, split_text, stream_nats,
                        unigram_nats)
from npnet.data.download import DownloadError
from npnet.data.text import TINYSHAKESPEARE_CHARS, TINYSHAKESPEARE_SHA256


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def shared_shakespeare_dir():
    path = find_data_dir("tinyshakespeare")
    if not (path / "input.txt").is_file():
        pytest.skip(f"Tiny Shakespeare not found at {path} (set NPNET_DATA)")
    return path


# -- the loader ------------------------------------------------------------------------------------
def test_load_shared_copy_verified(shared_shakespeare_dir):
    text = load_tinyshakespeare()
    assert len(text) == TINYSHAKESPEARE_CHARS == 1_115_394
    assert text.startswith("First Citizen:\nBefore we proceed any further")
    assert len(set(text)) == 65 and text.count("\n") == 40_000
    assert load_tinyshakespeare(shared_shakespeare_dir) == text                      # a folder
    assert load_tinyshakespeare(shared_shakespeare_dir / "input.txt") == text        # the file


def test_corrupt_present_file_raises(tmp_path):
    (tmp_path / "input.txt").write_text("First Citizen:\nnot quite Shakespeare\n")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        load_tinyshakespeare(tmp_path)
    # without a digest the same file is read as is (your own text in the same place)
    assert load_tinyshakespeare(tmp_path, sha256=None) == "First Citizen:\nnot quite Shakespeare\n"
    with pytest.raises(npnet.NpnetError, match="not a directory"):
        load_tinyshakespeare(tmp_path / "missing")


def test_download_from_local_server_verified(http_root, tmp_path, monkeypatch):
    root, base = http_root
    body = "ROMEO:\nBut, soft! what light through yonder window breaks?\n".encode()
    (root / "input.txt").write_bytes(body)
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "cache"))
    text = load_tinyshakespeare(url=f"{base}/input.txt", sha256=sha256(body))        # into the cache
    assert text == body.decode()
    assert (tmp_path / "cache" / "tinyshakespeare" / "input.txt").read_bytes() == body
    # a download that does not match the pinned digest is refused and nothing is kept
    folder = tmp_path / "explicit"
    folder.mkdir()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        load_tinyshakespeare(folder, url=f"{base}/input.txt", sha256=TINYSHAKESPEARE_SHA256)
    assert list(folder.iterdir()) == []
    with pytest.raises(DownloadError, match="could not download"):
        load_tinyshakespeare(folder, url=f"{base}/absent.txt", sha256=sha256(body))
    assert list(folder.iterdir()) == []
    with pytest.raises(DownloadError, match="no sha256"):
        load_tinyshakespeare(folder, url=f"{base}/input.txt", sha256=None)


# -- vocabulary and split ---------------------------------------------------------------------------
def test_vocab_round_trip_config_and_errors():
    text = "To be, or not to be:\nthat is the question."
    vocab = CharVocab.from_text(text)
    assert vocab.chars == "".join(sorted(set(text))) and vocab.size == len(vocab) == len(set(text))
    assert vocab.chars[0] == "\n" and vocab.chars[1] == " "
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    np.testing.assert_array_equal(ids, vocab.encode_plain(text))                     # fast == reference
    assert vocab.decode(ids) == text and vocab.decode(ids.reshape(2, -1)) == text
    assert vocab.decode([]) == "" and vocab.encode("").shape == (0,)
    again = CharVocab.from_config(vocab.get_config())
    assert again.chars == vocab.chars and isinstance(vocab.get_config()["chars"], str)
    for bad in ("Z", "é", "\u263a"):                                               # unknown, above the table
        with pytest.raises(npnet.NpnetError, match="not in the vocabulary"):
            vocab.encode("to " + bad)
        with pytest.raises(npnet.NpnetError, match="position 3"):
            vocab.encode_plain("to " + bad)
    with pytest.raises(npnet.NpnetError, match="outside the vocabulary"):
        vocab.decode([0, vocab.size])
    with pytest.raises(npnet.NpnetError, match="outside the vocabulary"):
        vocab.decode([-1])
    with pytest.raises(npnet.NpnetError, match="integer ids"):
        vocab.decode([0.5])
    with pytest.raises(npnet.NpnetError, match="distinct"):
        CharVocab("abca")
    with pytest.raises(npnet.NpnetError, match="single characters"):
        CharVocab(["ab", "c"])


def test_vocab_encode_matches_reference_on_shakespeare(shared_shakespeare_dir):
    text = load_tinyshakespeare()
    vocab = CharVocab.from_text(text)
    assert vocab.size == 65
    np.testing.assert_array_equal(vocab.encode(text), vocab.encode_plain(text))


def test_split_sizes():
    ids = np.arange(1000)
    train, val = split_text(ids)
    assert len(train) == 900 and len(val) == 100
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)
    assert split_text("abcdefghij", 0.3) == ("abcdefg", "hij")
    n = TINYSHAKESPEARE_CHARS
    assert [len(p) for p in split_text(range(n))] == [1_003_854, 111_540]
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(npnet.NpnetError, match="val_fraction"):
            split_text(ids, bad)
    with pytest.raises(npnet.NpnetError, match="too short"):
        split_text([1], 0.5)


# -- streams --------------------------------------------------------------------------------------
def test_consecutive_chunks_are_consecutive_text():
    text = "".join(chr(ord("a") + (i * 7) % 26) for i in range(103))
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    streams = TextStreams(ids, batch_size=4, seq_len=7)
    L = streams.stream_len
    assert L == 25 and len(streams) == 4 and streams.n_targets == 100
    chunks = list(streams)
    assert [x.shape for x, _ in chunks] == [(4, 7)] * 3 + [(4, 4)]
    xs = np.concatenate([x for x, _ in chunks], axis=1)                               # (B, L)
    ys = np.concatenate([y for _, y in chunks], axis=1)
    for b in range(4):
        assert vocab.decode(xs[b]) == text[b * L:(b + 1) * L]
        assert vocab.decode(ys[b]) == text[b * L + 1:(b + 1) * L + 1]
    for (x0, y0), (x1, _) in zip(chunks, chunks[1:]):                                 # y ends where x goes on
        np.testing.assert_array_equal(y0[:, -1], x1[:, 0])
    again = list(streams)                                                             # re-iterable, same pass
    assert all((a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(chunks, again))
    dropped = TextStreams(ids, batch_size=4, seq_len=7, drop_last=True)
    assert len(dropped) == 3 and dropped.n_targets == 84
    assert [x.shape for x, _ in dropped] == [(4, 7)] * 3


def test_streams_one_hot_and_errors():
    ids = np.array([0, 1, 2, 1, 0, 2, 2, 1, 0])
    streams = TextStreams(ids, batch_size=2, seq_len=3, one_hot=3)
    x, y = next(iter(streams))
    assert x.shape == (2, 3, 3) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x.argmax(-1), [[0, 1, 2], [0, 2, 2]])
    np.testing.assert_array_equal(y, [[1, 2, 1], [2, 2, 1]])
    with pytest.raises(npnet.NpnetError, match="too few"):
        TextStreams(ids[:3], batch_size=3, seq_len=2)
    with pytest.raises(npnet.NpnetError, match="one_hot"):
        TextStreams(ids, batch_size=2, seq_len=3, one_hot=2)
    with pytest.raises(npnet.ShapeError, match="1-d integer"):
        TextStreams(ids.astype(float), batch_size=2, seq_len=3)
    with pytest.raises(npnet.NpnetError, match=">= 1"):
        TextStreams(ids, batch_size=2, seq_len=0)


def test_streams_train_a_stateful_learner_and_carry_the_state():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, size=401)
    streams = TextStreams(ids, batch_size=4, seq_len=10)
    model = npnet.SequenceModel(3, 6, read_in=npnet.Embedding(5, 3), output_size=5, rng=1)
    learner = npnet.Learner(model, "ce", lr=1e-2, stateful=True, progress=False, tensorboard=False)
    learner.fit(streams, epochs=1)
    assert learner.runner.steps == len(streams) == 10
    assert learner.runner.state is not None                                           # carried across chunks
    # the chunks with the state carried are the whole streams read at once
    model.eval()
    state, outs = None, []
    for x, _ in streams:
        out, state = model.fprop(x, state)
        outs.append(out)
        model.clear_cache()
    whole, _ = model.fprop(streams._x)
    model.clear_cache()
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=1e-12, atol=1e-12)
    # stream_nats scores exactly that: every target once, state carried, in eval mode, restored after
    model.train()
    expected = nats_per_char(whole, streams._y)
    assert stream_nats(model, streams) == pytest.approx(expected, rel=1e-12)
    assert model.training
    assert stream_nats(model, TextStreams(ids, batch_size=4, seq_len=100)) == pytest.approx(expected, rel=1e-12)


# -- scores and baselines ---------------------------------------------------------------------------
def test_nats_equal_an_independent_computation():
    logits = np.array([[[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]],
                       [[-3.0, 1.0, 4.0], [10.0, -10.0, 0.0]]])                       # (B=2, T=2, V=3)
    targets = np.array([[0, 2], [1, 0]])
    losses = []
    for b in range(2):
        for t in range(2):
            z = [math.exp(v) for v in logits[b, t]]
            losses.append(-math.log(z[targets[b, t]] / sum(z)))
    expected = sum(losses) / 4
    assert nats_per_char(logits, targets) == pytest.approx(expected, rel=1e-13)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert nats_per_char(log_probs, targets) == pytest.approx(expected, rel=1e-13)   # log-probs as they are
    assert nats_per_char(logits.astype(np.float32), targets) == pytest.approx(expected, rel=1e-6)
    mask = np.array([[True, False], [False, True]])
    assert nats_per_char(logits, targets, mask) == pytest.approx((losses[0] + losses[3]) / 2, rel=1e-13)
    assert nats_per_char(logits + 1000.0, targets) == pytest.approx(expected, rel=1e-12)  # no overflow
    assert bits_per_char(expected) == pytest.approx(expected / math.log(2), rel=1e-15)
    assert perplexity(expected) == pytest.approx(math.exp(expected), rel=1e-15)
    assert perplexity(math.log(65)) == pytest.approx(65.0) and bits_per_char(math.log(2)) == pytest.approx(1.0)
    with pytest.raises(npnet.ShapeError, match="targets"):
        nats_per_char(logits, targets[:, :1])
    with pytest.raises(npnet.ShapeError, match=r"\[0, 3\)"):
        nats_per_char(logits, targets + 2)
    with pytest.raises(npnet.ShapeError, match="nothing to score"):
        nats_per_char(logits, targets, np.zeros((2, 2), bool))


def test_baselines_on_a_toy_corpus_equal_hand_computed_values():
    vocab = CharVocab("abc")
    train, val = vocab.encode("ababc"), vocab.encode("abc")
    # unigram, add-one: counts a 2, b 2, c 1 -> (3, 3, 2) / 8
    assert unigram_nats(train, val, 3) == pytest.approx(-(2 * math.log(3 / 8) + math.log(2 / 8)) / 3, rel=1e-14)
    # add-k with k=0.5: (2.5, 2.5, 1.5) / 6.5
    assert unigram_nats(train, val, 3, k=0.5) == pytest.approx(
        -(2 * math.log(2.5 / 6.5) + math.log(1.5 / 6.5)) / 3, rel=1e-14)
    # bigram, add-one: pairs ab 2, ba 1, bc 1; row a (1, 3, 1)/5, row b (2, 1, 2)/5; val scores ab, bc
    assert bigram_nats(train, val, 3) == pytest.approx(-(math.log(3 / 5) + math.log(2 / 5)) / 2, rel=1e-14)
    # add-k with k=0.1: row a (0.1, 2.1, 0.1)/2.3, row b (1.1, 0.1, 1.1)/2.3
    assert bigram_nats(train, val, 3, k=0.1) == pytest.approx(
        -(math.log(2.1 / 2.3) + math.log(1.1 / 2.3)) / 2, rel=1e-14)
    assert unigram_nats(train, val, 3, k=0) == pytest.approx(-(2 * math.log(2 / 5) + math.log(1 / 5)) / 3)
    with pytest.raises(npnet.NpnetError, match="k must be > 0"):
        bigram_nats(train, val, 3, k=0)
    with pytest.raises(npnet.NpnetError, match="unseen"):
        unigram_nats(vocab.encode("aab"), val, 3, k=0)
    with pytest.raises(npnet.ShapeError, match="vocab_size"):
        bigram_nats(train, val, 2)


def test_baselines_on_tiny_shakespeare(shared_shakespeare_dir):
    """The numbers docs/language_models.md quotes beside the models: the 90/10 split by characters,
    add-one unigram 3.347 and bigram 2.482 nats/char (from the training part, scored on validation)."""
    text = load_tinyshakespeare(shared_shakespeare_dir)
    vocab = CharVocab.from_text(text)
    train, val = split_text(vocab.encode(text))
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert round(unigram_nats(train, val, vocab.size), 3) == 3.347
    assert round(bigram_nats(train, val, vocab.size), 3) == 2.482
