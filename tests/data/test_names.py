"""npnet.data.names: name normalisation and encoding, load_names on the shared copy and on small
folders, and downloads of the names archive from a local HTTP server (verified by the archive's
digest or by the pinned content digest; unsafe archive members are never unpacked)."""
import hashlib
import io
import zipfile

import numpy as np
import pytest

import npnet.data.names
from npnet import datasets as D
from npnet.data.datasets import (ALPHABET, DownloadError, decode_name, encode_names, load_names,
                                 normalise_name)


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


