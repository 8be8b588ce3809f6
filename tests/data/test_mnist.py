"""npnet.data.mnist: the IDX reader and load_mnist on the shared copy, on generated files (gzipped
and raw), on broken files, and from a local HTTP server of mirrors with pinned checksums."""
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from npnet import datasets as D
from npnet.data import find_data_dir, load_mnist
from npnet.data.download import DownloadError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


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



def test_pinned_mnist_checksums_match_shared_copy(shared_mnist_dir):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        sums = D.MNIST_FILES[name]
        D.verify_file(shared_mnist_dir / name, sha256=sums["sha256"], md5=sums["md5"])

