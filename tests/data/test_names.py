"""Tests of npnet.datasets: name normalisation and encoding, the stratified split, the names and
MNIST loaders on the shared copies (skipped only if absent) and on generated files, and verified
downloads against a local HTTP server (good checksum loads; a mismatch leaves nothing behind)."""
import functools
import gzip
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import npnet.data.names
from npnet import datasets as D
from npnet.data.datasets import (ALPHABET, DownloadError, decode_name, encode_names, load_mnist,
                            load_names, normalise_name, stratified_split)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def shared_names_dir():
    path = SHARED / "names"
    if not path.is_dir():
        pytest.skip(f"shared names data not found at {path}")
    return path


@pytest.fixture
def shared_mnist_dir():
    path = SHARED / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"shared MNIST data not found at {path}")
    return path


# -- helpers that write small data sets ---------------------------------------------------------
def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def tiny_mnist(n=7, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def write_idx(folder: Path, prefix: str, images, labels, gz: bool):
    for stem, data in ((f"{prefix}-images-idx3-ubyte", idx_bytes(images, 2051)),
                       (f"{prefix}-labels-idx1-ubyte", idx_bytes(labels, 2049))):
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- normalisation and encoding -----------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("Émile", "Emile"), ("Lévêque", "Leveque"), ("Maçon", "Macon"), ("Adlersflügel", "Adlersflugel"),
    ("Groß", "Gross"), ("Marszałek", "Marszalek"), ("Żuk", "Zuk"), ("Núñez", "Nunez"),
    ("O'Neal", "O'Neal"), ("O’Néàl", "O'Neal"), ("D`Angelo", "D'Angelo"),
    ("Smith-Jones", "Smith-Jones"), ("Smith–Jones", "Smith-Jones"), ("St. John", "St. John"),
    ("To The First\u00a0 Page", "To The First Page"), ("  Park ", "Park"),
    ("Rafaj1", "Rafaj"), ("Lu:", "Lu"), ("Lytkin,", "Lytkin"), ("Ødegård", "Odegard"),
])
def test_normalise_name(raw, expected):
    out = normalise_name(raw)
    assert out == expected
    assert set(out) <= set(ALPHABET)
    assert normalise_name(out) == out                       # idempotent


def test_normalise_lower_and_alphabet():
    assert normalise_name("McDÖNALD", lower=True) == "mcdonald"
    assert len(ALPHABET) == len(set(ALPHABET)) == 56
    assert ALPHABET[:52] == "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_encode_round_trip_one_hot_and_indices():
    names = ["O'Neal", "Smith-Jones", "Xu", "St. John", "a"]
    onehots = encode_names(names)
    idx = encode_names(names, one_hot=False)
    for name, oh, ix in zip(names, onehots, idx):
        assert oh.shape == (len(name), len(ALPHABET)) and oh.dtype == np.float64
        np.testing.assert_array_equal(oh.sum(axis=1), 1.0)
        assert ix.dtype == np.int64 and ix.shape == (len(name),)
        np.testing.assert_array_equal(oh.argmax(axis=1), ix)
        assert decode_name(oh) == decode_name(ix) == name
    assert encode_names(["Éa"], dtype=np.float32)[0].dtype == np.float32
    assert decode_name(encode_names(["Lévêque"])[0]) == "Leveque"    # normalised on the way in
    with pytest.raises(ValueError, match="outside ALPHABET"):
        encode_names(["Lévêque"], normalise=False)
    with pytest.raises(ValueError, match="no characters"):
        encode_names(["123"])


def test_encoded_names_pad_into_a_masked_batch():
    from npnet import pad_sequences
    seqs = encode_names(["Xu", "Park", "Lee"])
    x, mask, _ = pad_sequences(seqs)
    assert x.shape == (3, 4, len(ALPHABET)) and mask.shape == (3, 4) and mask.dtype == bool
    np.testing.assert_array_equal(mask.sum(axis=1), [2, 4, 3])
    np.testing.assert_array_equal(x[0, 2:], 0.0)
    np.testing.assert_array_equal(x[1], seqs[1])
    xi, _, _ = pad_sequences(encode_names(["Xu", "Park"], one_hot=False), dtype=np.int64)
    assert xi.shape == (2, 4) and xi.dtype == np.int64


# -- stratified split ---------------------------------------------------------------------------
def test_stratified_split_deterministic_and_proportional():
    labels = np.repeat(np.arange(5), [100, 50, 7, 2, 1])
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(labels.size)]
    tr1, te1 = stratified_split(labels, 0.2, rng=42)
    tr2, te2 = stratified_split(labels, 0.2, rng=42)
    np.testing.assert_array_equal(tr1, tr2)
    np.testing.assert_array_equal(te1, te2)
    tr3, te3 = stratified_split(labels, 0.2, rng=43)
    assert not np.array_equal(te1, te3)
    # a partition of range(N)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr1, te1])), np.arange(labels.size))
    assert np.all(np.diff(tr1) > 0) and np.all(np.diff(te1) > 0)
    # per class: round(0.2 n_c) in test, at least one kept for training
    np.testing.assert_array_equal(np.bincount(labels[te1], minlength=5), [20, 10, 1, 0, 0])
    np.testing.assert_array_equal(np.bincount(labels[tr1], minlength=5), [80, 40, 6, 2, 1])
    tr, te = stratified_split(labels, 0.0, rng=0)
    assert te.size == 0 and tr.size == labels.size
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0)
    with pytest.raises(ValueError):
        stratified_split(labels.reshape(-1, 2))


# -- names ---------------------------------------------------------------------------------------
def test_load_names_shared(shared_names_dir):
    data = load_names(shared_names_dir)
    assert data.languages == D.NAMES_LANGUAGES
    assert len(data) == 20074 == len(data.labels)
    counts = data.counts()
    assert counts["Russian"] == 9408 and counts["English"] == 3668 and counts["Arabic"] == 2000
    by_lang = data.by_language()
    assert sorted(by_lang) == list(D.NAMES_LANGUAGES) and sum(map(len, by_lang.values())) == 20074
    assert by_lang["Arabic"][-1] == "Aswad"
    encoded = encode_names(data.names)              # every name survives normalisation
    assert len(encoded) == 20074 and min(len(e) for e in encoded) >= 1
    dedup = data.deduplicated()
    assert len(dedup) == 17987
    assert dedup.counts()["Arabic"] == 108 and dedup.counts()["English"] == 3668
    pairs = {(normalise_name(n), int(lab)) for n, lab in zip(dedup.names, dedup.labels)}
    assert len(pairs) == len(dedup)


def test_load_names_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        load_names(tmp_path / "missing")
    with pytest.raises(ValueError, match="no Language.txt"):
        load_names(tmp_path)
    (tmp_path / "Klingon.txt").write_text("K'Tar\n\n  Worf \n", encoding="utf-8")
    data = load_names(tmp_path)
    assert data.names == ["K'Tar", "Worf"] and data.languages == ("Klingon",)


def test_load_names_refuses_download_without_checksum(tmp_path):
    with pytest.raises(DownloadError, match="sha256"):
        load_names(cache_dir=tmp_path, url="http://127.0.0.1:9/never", sha256=None, content_sha256=None)
    assert list(tmp_path.iterdir()) == []


def _zip_folder(folder):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.glob("*.txt")):
            zf.writestr(f"data/names/{p.name}", p.read_bytes())
    return buf.getvalue()


def test_pinned_content_digest_matches_the_shared_data(shared_names_dir):
    assert D.names_content_digest(shared_names_dir) == D.NAMES_CONTENT_SHA256


def test_download_verified_by_pinned_content(http_root, tmp_path, shared_names_dir):
    root, base = http_root
    (root / "data.zip").write_bytes(_zip_folder(shared_names_dir))
    cache = tmp_path / "cache"
    data = load_names(cache_dir=cache, url=f"{base}/data.zip")           # default: content digest
    assert len(data) == 20074 and len(data.languages) == 18


def test_download_with_wrong_content_refused(http_root, tmp_path, shared_names_dir):
    root, base = http_root
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in shared_names_dir.glob("*.txt"):
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "Irish.txt").write_bytes((bad / "Irish.txt").read_bytes() + b"Tampered\n")
    (root / "data.zip").write_bytes(_zip_folder(bad))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="content mismatch"):
        load_names(cache_dir=cache, url=f"{base}/data.zip")
    assert list(cache.iterdir()) == []                                   # nothing kept


# -- MNIST -----------------------------------------------------------------------------------------
def test_load_mnist_shared(shared_mnist_dir):
    images, labels = load_mnist(shared_mnist_dir)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), MNIST_TEST_COUNTS)
    assert images.max() == 255 and images.min() == 0
    all_images, all_labels = load_mnist(shared_mnist_dir, kind="all")   # no train files: test only
    assert all_images.shape == (10000, 28, 28)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_mnist(shared_mnist_dir, kind="train")


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_generated_idx(tmp_path, gz):
    test_images, test_labels = tiny_mnist(7, seed=0)
    train_images, train_labels = tiny_mnist(5, seed=1)
    write_idx(tmp_path, "t10k", test_images, test_labels, gz)
    images, labels = load_mnist(tmp_path)
    np.testing.assert_array_equal(images, test_images)
    np.testing.assert_array_equal(labels, test_labels)
    write_idx(tmp_path, "train", train_images, train_labels, gz)
    images, labels = load_mnist(tmp_path, kind="train")
    np.testing.assert_array_equal(images, train_images)
    images, labels = load_mnist(tmp_path, kind="all")            # train then test
    np.testing.assert_array_equal(images, np.concatenate([train_images, test_images]))
    np.testing.assert_array_equal(labels, np.concatenate([train_labels, test_labels]))


def test_load_mnist_refuses_bad_files(tmp_path):
    images, labels = tiny_mnist(4)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images, 2049))      # labels magic
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2049))
    with pytest.raises(ValueError, match="bad magic number 2049, expected 2051"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images, 2051)[:-10])  # truncated
    with pytest.raises(ValueError, match="body has"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images[:3], 2051))    # 3 vs 4
    with pytest.raises(ValueError, match="3 images but"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images, 2051))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels + 10, 2049))
    with pytest.raises(ValueError, match="digits 0-9"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="validation")


# -- verified downloads against a local server ----------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(folder, base_url): an HTTP server on 127.0.0.1 (ephemeral port) serving ``folder``."""
    root = tmp_path / "www"
    root.mkdir()
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def names_zip() -> bytes:
    """An archive shaped like the tutorial's data.zip, plus members that must never be unpacked."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data/names/Irish.txt", "O'Neal\nÓ Briain\nMurphy\n")
        zf.writestr("data/names/Czech.txt", "Novák\nDvořák\n")
        zf.writestr("data/eng-fra.txt", "Go.\tVa !\n")
        zf.writestr("data/names/../../escape.txt", "evil\n")
        zf.writestr("/abs/names/Abs.txt", "evil\n")
        zf.writestr("data/names/README.md", "not a language\n")
        zf.writestr("data\\names\\..\\..\\back.txt", "evil\n")
        link = zipfile.ZipInfo("data/names/Link.txt")
        link.external_attr = 0o120777 << 16                             # a symlink entry
        zf.writestr(link, "/etc/passwd")
    return buf.getvalue()


def test_download_good_checksum_loads_names(http_root, tmp_path):
    root, base = http_root
    blob = names_zip()
    (root / "data.zip").write_bytes(blob)
    cache = tmp_path / "cache"
    data = load_names(cache_dir=cache, url=f"{base}/data.zip", sha256=sha256(blob))
    assert data.languages == ("Czech", "Irish")
    assert data.by_language() == {"Czech": ["Novák", "Dvořák"], "Irish": ["O'Neal", "Ó Briain", "Murphy"]}
    assert sorted(p.name for p in (cache / "names").iterdir()) == ["Czech.txt", "Irish.txt"]
    assert sorted(p.name for p in cache.iterdir()) == ["names", "names-data.zip"]
    assert not [p for p in tmp_path.rglob("*") if p.name in ("escape.txt", "back.txt", "Abs.txt", "Link.txt")]
    # second call reads the cache: the server is not needed any more
    (root / "data.zip").unlink()
    assert load_names(cache_dir=cache, url=f"{base}/data.zip", sha256=sha256(blob)).names == data.names


def test_oversized_archive_member_refused(http_root, tmp_path, monkeypatch):
    root, base = http_root
    blob = names_zip()
    (root / "data.zip").write_bytes(blob)
    monkeypatch.setattr(npnet.data.names, "_NAMES_MEMBER_LIMIT", 10)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="more than a names file"):
        load_names(cache_dir=cache, url=f"{base}/data.zip", sha256=sha256(blob))
    assert sorted(p.name for p in cache.iterdir()) == ["names-data.zip"]   # verified, not unpacked


def test_download_checksum_mismatch_leaves_nothing(http_root, tmp_path):
    root, base = http_root
    blob = names_zip()
    (root / "data.zip").write_bytes(blob[:-5] + b"XXXXX")          # corrupted in transit
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        load_names(cache_dir=cache, url=f"{base}/data.zip", sha256=sha256(blob))
    msg = str(info.value)
    assert sha256(blob) in msg and sha256(blob[:-5] + b"XXXXX") in msg
    assert "expected sha256" in msg and "got" in msg
    assert isinstance(info.value, ValueError)
    assert list(cache.iterdir()) == []                               # no final file, no temp file
    # the generic function: md5 mismatch, and a missing URL
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(DownloadError, match="expected md5 0{32}"):
        D.download(f"{base}/data.zip", dest, md5="0" * 32)
    with pytest.raises(DownloadError, match="could not download"):
        D.download(f"{base}/missing.zip", dest, sha256="0" * 64)
    with pytest.raises(DownloadError, match="checksum is required"):
        D.download(f"{base}/data.zip", dest)
    assert list(dest.parent.iterdir()) == []


def test_download_both_checksums_and_verify_file(http_root, tmp_path):
    root, base = http_root
    blob = b"npnet" * 1000
    (root / "blob.bin").write_bytes(blob)
    dest = D.download(f"{base}/blob.bin", tmp_path / "blob.bin", sha256=sha256(blob),
                      md5=hashlib.md5(blob).hexdigest())
    assert dest.read_bytes() == blob
    assert D.verify_file(dest, md5=hashlib.md5(blob).hexdigest()) == dest
    with pytest.raises(DownloadError, match="expected sha256"):
        D.verify_file(dest, sha256="f" * 64)


def test_download_mnist_from_mirrors(http_root, tmp_path):
    root, base = http_root
    images, labels = tiny_mnist(6, seed=3)
    (root / "good").mkdir()
    write_idx(root / "good", "t10k", images, labels, gz=True)
    sums = {name: {"sha256": sha256((root / "good" / name).read_bytes())}
            for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    (root / "bad").mkdir()                                           # a mirror serving other bytes
    write_idx(root / "bad", "t10k", images[::-1], labels[::-1], gz=True)
    cache = tmp_path / "cache"
    mirrors = [f"{base}/nowhere/", f"{base}/bad/", f"{base}/good/"]
    got_images, got_labels = load_mnist(cache_dir=cache, mirrors=mirrors, checksums=sums)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(sums)
    # only bad mirrors: refused, and nothing left under the final names
    cache2 = tmp_path / "cache2"
    with pytest.raises(DownloadError, match="any mirror"):
        load_mnist(cache_dir=cache2, mirrors=[f"{base}/bad/"], checksums=sums)
    assert list((cache2 / "mnist").iterdir()) == []
    # a tampered cached file is refused, not used
    (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels[::-1], 2049)))
    with pytest.raises(DownloadError, match="checksum mismatch"):
        load_mnist(cache_dir=cache, mirrors=mirrors, checksums=sums)
    with pytest.raises(DownloadError, match="no pinned checksum"):
        load_mnist(cache_dir=tmp_path / "cache3", mirrors=mirrors, checksums={})


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "d"))
    assert D.default_cache_dir() == tmp_path / "d"
    monkeypatch.delenv("NPNET_DATA")
    assert D.default_cache_dir() == Path.home() / ".cache" / "npnet"


def test_pinned_mnist_checksums_match_shared_copy(shared_mnist_dir):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        sums = D.MNIST_FILES[name]
        D.verify_file(shared_mnist_dir / name, sha256=sums["sha256"], md5=sums["md5"])
