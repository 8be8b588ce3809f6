"""MNIST digits: the IDX file reader and the loader (a local folder, or the verified cache).

The images are returned as stored, (N, 28, 28) uint8; scaling and batching are the caller's.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..layer import NpnetError
from .download import DownloadError, download, find_data_dir, verify_file

__all__ = ["MNIST_MIRRORS", "MNIST_FILES", "load_mnist", "read_idx"]

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": {"md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
    "train-labels-idx1-ubyte.gz": {"md5": "d53e105ee54ea40749a09fcbcd1e9432"},
    "t10k-images-idx3-ubyte.gz": {
        "md5": "9fb629c4189551a2d022fa330f9573f3",
        "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
    "t10k-labels-idx1-ubyte.gz": {
        "md5": "ec29112dd5afa0611ce80d1b7f02629c",
        "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
}
_MNIST_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_IMAGES, _IDX_LABELS = 2051, 2049


def read_idx(path, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzipped (detected by content) or raw.

    Format: big-endian uint32 magic = 0x0800 + ndim (2049: labels (N,), 2051: images (N, R, C)),
    then ndim uint32 sizes, then prod(sizes) uint8 values. Raises ValueError naming the file on
    a wrong magic number, a truncated or over-long body.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise NpnetError(f"{path}: cannot read ({exc})") from exc
    if len(data) < 4:
        raise NpnetError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        raise NpnetError(f"{path}: bad magic number {magic}, expected {expect_magic} "
                         f"({'images' if expect_magic == _IDX_IMAGES else 'labels'} IDX file)")
    if magic >> 8 != 0x08 or not 1 <= (magic & 0xFF) <= 4:
        raise NpnetError(f"{path}: bad magic number {magic}, expected 2049 (labels) or 2051 (images)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise NpnetError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != size:
        raise NpnetError(f"{path}: header says shape {shape} = {size} bytes, body has {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, _IDX_IMAGES)                          # (N, 28, 28) uint8
    labels = read_idx(labels_path, _IDX_LABELS)                          # (N,) uint8
    if images.shape[0] != labels.shape[0]:
        raise NpnetError(f"{images_path} has {images.shape[0]} images but {labels_path} "
                         f"has {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise NpnetError(f"{labels_path}: labels must be digits 0-9, found {int(labels.max())}")
    return images, labels


def _local_paths(folder: Path, kind: str) -> list:
    """[(images, labels)] per split read from a folder the caller named (no checksums)."""
    present = {split: [_find(folder, stem) for stem in stems] for split, stems in _MNIST_SPLITS.items()}
    if kind == "all":
        splits = [s for s in ("train", "test") if all(present[s])]
        if not splits:
            raise NpnetError(f"no MNIST IDX files in {folder}: expected "
                             f"t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)")
    else:
        splits = [kind]
    for split in splits:
        for stem, p in zip(_MNIST_SPLITS[split], present[split]):
            if p is None:
                raise NpnetError(f"{folder} has no {stem} or {stem}.gz (needed for kind={kind!r})")
    return [present[split] for split in splits]


def load_mnist(data_dir=None, cache_dir=None, kind: str = "test", mirrors=MNIST_MIRRORS,
               checksums=None, *, mnist_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits from the standard IDX files.

    Parameters
    ----------
    data_dir : path or None
        A folder with ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` and/or
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, each gzipped (``.gz``) or raw,
        read as it is (it must exist). ``mnist_dir=`` is the same argument under its former name.
    cache_dir : path or None
        Used when ``data_dir`` is None: the files live in ``<cache_dir>/mnist/``. Without it,
        in :func:`npnet.data.find_data_dir` ``("mnist")`` (``$NPNET_DATA/mnist`` or
        ``~/.cache/npnet/mnist``). There, missing files are downloaded from the first mirror that
        answers and verified against their pinned checksums; present files are re-verified.
    kind : "test" (10,000), "train" (60,000) or "all"
        "all" is train then test. From ``data_dir`` it uses the training files when they are
        present and the test files alone otherwise; from the cache it fetches both.
    mirrors : base URLs tried in order (each + file name).
    checksums : dict file name -> {"md5": ..., "sha256": ...}; default :data:`MNIST_FILES`.

    Returns
    -------
    images : ndarray (N, 28, 28) uint8, 0 background .. 255 ink (divide by 255 for [0, 1])
    labels : ndarray (N,) uint8, digits 0-9
    """
    if mnist_dir is not None:
        if data_dir is not None:
            raise NpnetError("pass the MNIST folder once: data_dir= or its former name mnist_dir=, not both")
        data_dir = mnist_dir
    if kind not in ("test", "train", "all"):
        raise NpnetError(f"kind must be 'test', 'train' or 'all', got {kind!r}")
    if data_dir is not None:
        paths = _local_paths(find_data_dir("mnist", data_dir), kind)
    else:
        checksums = MNIST_FILES if checksums is None else checksums
        folder = Path(cache_dir).expanduser() / "mnist" if cache_dir is not None else find_data_dir("mnist")
        splits = ["train", "test"] if kind == "all" else [kind]
        paths = [[_fetch(folder, stem + ".gz", mirrors, checksums) for stem in _MNIST_SPLITS[s]]
                 for s in splits]
    parts = [_read_split(img, lab) for img, lab in paths]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _fetch(folder: Path, name: str, mirrors, checksums: dict) -> Path:
    """A verified copy of ``name`` in ``folder``: the cached file (re-verified) or a download."""
    sums = checksums.get(name)
    if not sums or not (sums.get("sha256") or sums.get("md5")):
        raise DownloadError(f"no pinned checksum for {name}; refusing to download it unverified")
    dest = folder / name
    if dest.exists():
        return verify_file(dest, sha256=sums.get("sha256"), md5=sums.get("md5"))
    errors = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        try:
            return download(url, dest, sha256=sums.get("sha256"), md5=sums.get("md5"))
        except DownloadError as exc:
            errors.append(str(exc))
    raise DownloadError(f"could not get a verified {name} from any mirror:\n  " + "\n  ".join(errors))
