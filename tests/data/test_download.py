"""npnet.data.download: find_data_dir (argument, then $NPNET_DATA, then the cache), the cache root,
and verified downloads against a local HTTP server (a mismatch leaves nothing behind)."""
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from npnet import datasets as D
from npnet.data.download import DownloadError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "d"))
    assert D.default_cache_dir() == tmp_path / "d"
    monkeypatch.delenv("NPNET_DATA")
    assert D.default_cache_dir() == Path.home() / ".cache" / "npnet"




# -- find_data_dir: the argument, else $NPNET_DATA/<name>, else ~/.cache/npnet/<name> --------------
def test_find_data_dir_order(monkeypatch, tmp_path):
    from npnet.data import find_data_dir
    monkeypatch.setenv("NPNET_DATA", str(tmp_path / "root"))
    assert find_data_dir("names") == tmp_path / "root" / "names"          # may not exist yet
    assert find_data_dir("mnist", tmp_path) == tmp_path                    # the argument wins
    assert find_data_dir("mnist", str(tmp_path)) == tmp_path
    monkeypatch.setenv("NPNET_DATA", "")                                   # empty = unset
    assert find_data_dir("names") == Path.home() / ".cache" / "npnet" / "names"
    monkeypatch.delenv("NPNET_DATA")
    assert find_data_dir("tinyshakespeare") == Path.home() / ".cache" / "npnet" / "tinyshakespeare"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_data_dir("names", "~") == tmp_path                         # ~ expanded


def test_find_data_dir_refuses_a_missing_folder_and_a_bad_name(tmp_path):
    from npnet import NpnetError
    from npnet.data import find_data_dir
    with pytest.raises(NpnetError, match=r"data_dir '.*nowhere' for the names data is not a directory"):
        find_data_dir("names", tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NpnetError, match="not a directory"):
        find_data_dir("names", tmp_path / "file.txt")
    for bad in ("", "a/b", "..", None):
        with pytest.raises(NpnetError, match="one folder name"):
            find_data_dir(bad)


def test_loaders_resolve_their_folder_through_find_data_dir(monkeypatch, tmp_path):
    """load_names() and load_mnist() with no folder read $NPNET_DATA/names and $NPNET_DATA/mnist."""
    from npnet.data import load_mnist, load_names
    monkeypatch.setenv("NPNET_DATA", str(tmp_path))
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "Klingon.txt").write_text("Worf\nK'Tar\n", encoding="utf-8")
    assert load_names().names == ["Worf", "K'Tar"]
    (tmp_path / "mnist").mkdir()
    labels = np.arange(3, dtype=np.uint8)
    body = (2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + labels.tobytes()
    images = np.zeros((3, 28, 28), np.uint8)
    ibody = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (3, 28, 28)) + images.tobytes()
    for name, data in (("t10k-labels-idx1-ubyte.gz", body), ("t10k-images-idx3-ubyte.gz", ibody)):
        (tmp_path / "mnist" / name).write_bytes(gzip.compress(data))
    sums = {n: {"sha256": sha256((tmp_path / "mnist" / n).read_bytes())}
            for n in ("t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")}
    got_images, got_labels = load_mnist(checksums=sums, mirrors=[])          # cached, re-verified
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.shape == (3, 28, 28)
    with pytest.raises(DownloadError, match="checksum mismatch"):            # and really verified
        load_mnist(checksums={n: {"sha256": "0" * 64} for n in sums}, mirrors=[])
    # the former keyword and an explicit folder still work; both at once is refused
    np.testing.assert_array_equal(load_mnist(mnist_dir=tmp_path / "mnist")[1], labels)
    np.testing.assert_array_equal(load_mnist(data_dir=tmp_path / "mnist")[1], labels)
    with pytest.raises(ValueError, match="not both"):
        load_mnist(tmp_path / "mnist", mnist_dir=tmp_path / "mnist")
    with pytest.raises(ValueError, match="for the mnist data is not a directory"):
        load_mnist(tmp_path / "nowhere")
