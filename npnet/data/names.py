"""Real data for npnet: surnames by language (character sequences) and MNIST digits (IDX files).

Loaders read a local folder first; without one they use a cache (``$NPNET_DATA`` or
``~/.cache/npnet``) filled by :func:`download`, which verifies a pinned checksum before a file
ever appears under its final name. Nothing here knows about models; arrays are plain NumPy.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import string
import tempfile
import unicodedata
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..layer import NpnetError, as_float_dtype, as_rng

__all__ = [
    "DownloadError", "download", "verify_file", "default_cache_dir",
    "NAMES_URL", "NAMES_SHA256", "NAMES_LANGUAGES", "NamesData", "load_names",
    "ALPHABET", "normalise_name", "encode_names", "decode_name", "stratified_split",
    "MNIST_MIRRORS", "MNIST_FILES", "load_mnist", "read_idx",
]


# ---------------------------------------------------------------------------------------------
# Verified downloads
# ---------------------------------------------------------------------------------------------
class DownloadError(NpnetError):
    """A download failed, or a file does not match its pinned checksum (a ValueError)."""


_CHUNK = 1 << 20  # 1 MiB


def default_cache_dir() -> Path:
    """``$NPNET_DATA`` if set, else ``~/.cache/npnet``."""
    env = os.environ.get("NPNET_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "npnet"


def _hashers(sha256: str | None, md5: str | None) -> dict:
    """name -> (hashlib object, expected lowercase hex); refuses a call with no checksum."""
    if sha256 is None and md5 is None:
        raise DownloadError("a checksum is required: pass sha256=... or md5=... "
                            "(npnet never keeps an unverified download)")
    out = {}
    for name, expected, size in (("sha256", sha256, 64), ("md5", md5, 32)):
        if expected is None:
            continue
        expected = str(expected).strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{size}}}", expected):
            raise DownloadError(f"{name} must be {size} hex digits, got {expected!r}")
        out[name] = (hashlib.new(name), expected)
    return out


def _check_digests(hashers: dict, what: str) -> None:
    for name, (h, expected) in hashers.items():
        got = h.hexdigest()
        if got != expected:
            raise DownloadError(f"checksum mismatch for {what}: expected {name} {expected}, got {got}")


def verify_file(path, sha256: str | None = None, md5: str | None = None) -> Path:
    """Check an existing file against its checksum(s); raise :class:`DownloadError` on a mismatch."""
    path = Path(path)
    hashers = _hashers(sha256, md5)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            for h, _ in hashers.values():
                h.update(chunk)
    _check_digests(hashers, str(path))
    return path


def download(url: str, dest, sha256: str | None = None, md5: str | None = None,
             timeout: float = 60.0, check=None) -> Path:
    """Fetch ``url`` to ``dest``, verified: stream to a temporary file, check, then rename.

    The bytes go to a temporary file next to ``dest`` (same directory, so the final
    ``os.replace`` is atomic), hashed on the fly. On a checksum mismatch or any error the
    temporary file is deleted and :class:`DownloadError` is raised (naming the expected and
    the received digest for a mismatch), so ``dest`` is either the complete, verified file or
    untouched. At least one of ``sha256``/``md5`` is required; both are checked if given.
    Instead of a digest, ``check`` may be a callable run on the temporary file before the
    rename that raises :class:`DownloadError` unless the content is right (used where the
    archive's own digest is unknown but its content's is pinned).

    Returns the path ``dest``.
    """
    dest = Path(dest)
    hashers = {} if (check is not None and sha256 is None and md5 is None) else _hashers(sha256, md5)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        for h, _ in hashers.values():
                            h.update(chunk)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise DownloadError(f"could not download {url}: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        _check_digests(hashers, url)
        if check is not None:
            check(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


# ---------------------------------------------------------------------------------------------
# Surnames by language
# ---------------------------------------------------------------------------------------------
NAMES_URL = "https://download.pytorch.org/tutorial/data.zip"
# sha256 of data.zip at NAMES_URL: TO BE PINNED. The host was unreachable when this module was
# written, so the digest could not be computed here. Until it is pinned, downloading the names
# requires an explicit ``load_names(sha256=...)`` (a digest computed from a copy you trust);
# npnet refuses to use the archive unverified. Local folders (``data_dir=``) need no checksum.
NAMES_SHA256: str | None = None
# sha256 of the data set's content, pinned: over the sorted ``Language.txt`` files, the lines
# ``<Language>\n<sha256 of the file's bytes>\n`` (see :func:`names_content_digest`). Computed from
# the canonical 18 files (20,074 lines). With no archive digest, a download is accepted only if
# the names files it unpacks have exactly this content.
NAMES_CONTENT_SHA256 = "6b1ffa7281b33ccf90c2e9bcd4f26250677d22ed35a37be6904b30cd02b7f869"
NAMES_LANGUAGES = ("Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek",
                   "Irish", "Italian", "Japanese", "Korean", "Polish", "Portuguese", "Russian",
                   "Scottish", "Spanish", "Vietnamese")
_NAMES_MEMBER_LIMIT = 16 << 20          # no names file is near this; refuses zip bombs
_LANGUAGE_RE = re.compile(r"[A-Za-z][A-Za-z_\-]*")


@dataclass
class NamesData:
    """Surnames and their language labels.

    names : list of str (N,) -- raw lines (surrounding whitespace stripped), not normalised
    labels : ndarray (N,) int64 -- index into ``languages``
    languages : tuple of str (K,) -- sorted language names (file stems)
    """
    names: list
    labels: np.ndarray
    languages: tuple

    def __len__(self) -> int:
        return len(self.names)

    def by_language(self) -> dict:
        """language -> list of its names, in file order."""
        out = {lang: [] for lang in self.languages}
        for name, label in zip(self.names, self.labels):
            out[self.languages[label]].append(name)
        return out

    def counts(self) -> dict:
        """language -> number of names."""
        return dict(zip(self.languages, np.bincount(self.labels, minlength=len(self.languages)).tolist()))

    def subset(self, indices) -> "NamesData":
        idx = np.asarray(indices, dtype=np.int64)
        return NamesData([self.names[i] for i in idx], self.labels[idx].copy(), self.languages)

    def deduplicated(self) -> "NamesData":
        """Keep the first occurrence of each (normalised name, language) pair.

        A name repeated within one language is one example, not several; the same name under
        several languages stays once under each (those examples are genuinely ambiguous).
        """
        seen, keep = set(), []
        for i, (name, label) in enumerate(zip(self.names, self.labels)):
            key = (normalise_name(name), int(label))
            if key not in seen:
                seen.add(key)
                keep.append(i)
        return self.subset(keep)


def _read_names_dir(folder: Path) -> NamesData:
    files = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if not files:
        raise NpnetError(f"no Language.txt files in {folder} (expected e.g. {folder / 'English.txt'})")
    names, labels, languages = [], [], []
    for k, path in enumerate(files):
        languages.append(path.stem)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise NpnetError(f"{path} is not UTF-8 text: {exc}") from exc
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line]
        names.extend(lines)
        labels.extend([k] * len(lines))
    return NamesData(names, np.asarray(labels, dtype=np.int64), tuple(languages))


def _extract_names(archive: Path, dest: Path) -> None:
    """Unpack only ``.../names/<Language>.txt`` members of ``archive`` into ``dest``, safely.

    Output paths are built from a validated file stem (letters, '_' or '-'), never from the
    member path, so absolute paths, ``..`` components, symlinks and directories in the archive
    cannot write outside ``dest``. Members larger than 16 MiB are refused. The folder appears
    atomically (unpacked into a temporary sibling, then renamed).
    """
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        found = 0
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                p = PurePosixPath(info.filename.replace("\\", "/"))
                if (info.is_dir() or p.is_absolute() or ".." in p.parts or len(p.parts) < 2
                        or p.parts[-2] != "names" or p.suffix != ".txt"
                        or not _LANGUAGE_RE.fullmatch(p.stem)):
                    continue
                if (info.external_attr >> 16) & 0o170000 == 0o120000:   # a symlink entry
                    continue
                if info.file_size > _NAMES_MEMBER_LIMIT:
                    raise DownloadError(f"{archive}: member {info.filename} is {info.file_size} bytes, "
                                        f"more than a names file can be")
                with zf.open(info) as src, open(tmp / f"{p.stem}.txt", "wb") as out:
                    shutil.copyfileobj(src, out)
                found += 1
        if not found:
            raise DownloadError(f"{archive} holds no names/<Language>.txt files")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def names_content_digest(folder) -> str:
    """sha256 over the sorted ``*.txt`` files of ``folder``: ``<stem>\n<sha256 of bytes>\n`` each."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.txt")):
        h.update(path.stem.encode() + b"\n" + hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return h.hexdigest()


def _names_archive_checker(expected: str):
    """A ``download(check=...)`` callable: unpack to a scratch folder and compare the content digest."""
    def check(archive: Path) -> None:
        scratch = Path(tempfile.mkdtemp(dir=archive.parent, prefix=".names-check."))
        try:
            _extract_names(archive, scratch / "names")
            got = names_content_digest(scratch / "names")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if got != expected:
            raise DownloadError(f"names archive content mismatch: expected content sha256 {expected}, got {got}")
    return check


def load_names(data_dir=None, cache_dir=None, url: str = NAMES_URL,
               sha256: str | None = NAMES_SHA256,
               content_sha256: str | None = NAMES_CONTENT_SHA256) -> NamesData:
    """Load the surname data set: one ``Language.txt`` (UTF-8, one name per line) per class.

    Parameters
    ----------
    data_dir : path or None
        A folder of ``Language.txt`` files (e.g. ``data/names`` of the tutorial archive).
        Blank lines are skipped and surrounding whitespace stripped; duplicates are kept.
    cache_dir : path or None
        Used when ``data_dir`` is None: default :func:`default_cache_dir`. If
        ``<cache>/names/`` holds the files they are read; otherwise the archive at ``url`` is
        downloaded to ``<cache>/names-data.zip``, verified against ``sha256`` (mandatory) and
        its ``names/*.txt`` members unpacked into ``<cache>/names/``.
    url, sha256 : the archive and its digest (see ``NAMES_SHA256``).
    content_sha256 : the pinned digest of the unpacked files (:func:`names_content_digest`),
        checked when ``sha256`` is None. With neither, nothing is downloaded.

    Returns
    -------
    NamesData
        ``names`` (raw strings), ``labels`` (N,) int64, ``languages`` sorted;
        ``.by_language()`` gives the dict language -> names.
    """
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise NpnetError(f"data_dir {folder} is not a directory of Language.txt files")
        return _read_names_dir(folder)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / "names"
    if folder.is_dir() and any(folder.glob("*.txt")):
        return _read_names_dir(folder)
    if sha256 is None and content_sha256 is None:
        raise DownloadError(
            f"no names in {folder} and no pinned sha256 for {url}: pass data_dir= (a folder of "
            "Language.txt files) or sha256= (the archive's digest, computed from a copy you trust)")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "names-data.zip"
    check = _names_archive_checker(content_sha256) if sha256 is None else None
    if archive.exists():
        if check is None:
            verify_file(archive, sha256=sha256)
        else:
            check(archive)
    else:
        download(url, archive, sha256=sha256, check=check)
    _extract_names(archive, folder)
    return _read_names_dir(folder)


# -- characters --------------------------------------------------------------------------------
ALPHABET = string.ascii_letters + " '-."
"""The 56 characters a normalised name may contain: a-z, A-Z, space, apostrophe, hyphen, period."""
_CHAR_INDEX = {c: i for i, c in enumerate(ALPHABET)}
# Letters without a Unicode decomposition into base + combining mark, and punctuation variants.
_SPECIAL = {"ß": "ss", "ẞ": "SS", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE",
            "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th",
            "ı": "i", "’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "‐": "-", "‑": "-",
            "–": "-", "—": "-"}


def normalise_name(s: str, lower: bool = False) -> str:
    """Reduce a name to :data:`ALPHABET`.

    Steps: map the few letters and marks without a decomposition (ß -> ss, ł -> l, ø -> o,
    typographic apostrophes -> ', dashes -> -), Unicode NFD and drop the combining marks
    (é -> e, Ż -> Z), turn every kind of space into ' ', drop every other character outside
    the alphabet (digits, '/', ':', ','), collapse runs of spaces and strip the ends.
    ``lower=True`` also lower-cases. Example: ``"O’Néàl"`` -> ``"O'Neal"``.
    """
    s = "".join(_SPECIAL.get(c, c) for c in s)
    out = []
    for c in unicodedata.normalize("NFD", s):
        if c in _CHAR_INDEX:
            out.append(c)
        elif c.isspace():
            out.append(" ")
        # combining marks (category Mn) and anything else outside the alphabet are dropped
    s = " ".join("".join(out).split())
    return s.lower() if lower else s


def encode_names(names, one_hot: bool = True, dtype=np.float64, normalise: bool = True) -> list:
    """Names -> one sequence per name.

    Each name is normalised (:func:`normalise_name`) unless ``normalise=False``, in which case it
    must already be in :data:`ALPHABET`. ``one_hot=True`` gives arrays (T_i, len(ALPHABET)) of
    ``dtype`` with a single 1 per row; ``one_hot=False`` gives int64 index arrays (T_i,). An
    empty result (a name with no alphabet characters) raises ValueError.
    """
    dtype = as_float_dtype(dtype)
    eye = np.eye(len(ALPHABET), dtype=dtype)                            # (V, V)
    out = []
    for name in names:
        s = normalise_name(name) if normalise else name
        try:
            idx = np.fromiter((_CHAR_INDEX[c] for c in s), dtype=np.int64, count=len(s))  # (T_i,)
        except KeyError as exc:
            raise NpnetError(f"name {name!r} has character {exc.args[0]!r} outside ALPHABET "
                             f"{ALPHABET!r} (normalise it first)") from None
        if idx.size == 0:
            raise NpnetError(f"name {name!r} has no characters of ALPHABET after normalisation")
        out.append(eye[idx] if one_hot else idx)                        # (T_i, V) or (T_i,)
    return out


def decode_name(seq) -> str:
    """Inverse of :func:`encode_names` for one sequence: one-hot (T, V) or indices (T,) -> str."""
    a = np.asarray(seq)
    idx = a.argmax(axis=-1) if a.ndim == 2 else a
    return "".join(ALPHABET[int(i)] for i in idx)


def stratified_split(labels, test_fraction: float = 0.2, rng=0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test split that keeps each class's proportion.

    For each class c with n_c examples, round(test_fraction * n_c) of them (chosen by a
    permutation from ``rng``) go to test, but never all of them: a class with n_c >= 2 keeps
    at least one training example, and a class with a single example stays in train.
    The same labels and seed always give the same split.

    Returns (train_idx, test_idx): sorted int64 index arrays that partition range(N).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise NpnetError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise NpnetError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = as_rng(rng)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)                                # (n_c,)
        n_test = min(int(round(test_fraction * idx.size)), idx.size - 1)
        test.append(rng.permutation(idx)[:n_test])
    test_idx = np.sort(np.concatenate(test)).astype(np.int64) if test else np.zeros(0, np.int64)
    is_test = np.zeros(labels.size, dtype=bool)
    is_test[test_idx] = True
    return np.flatnonzero(~is_test).astype(np.int64), test_idx


# ---------------------------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------------------------
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


def load_mnist(mnist_dir=None, cache_dir=None, kind: str = "test", mirrors=MNIST_MIRRORS,
               checksums=None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits from the standard IDX files.

    Parameters
    ----------
    mnist_dir : path or None
        A folder with ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` and/or
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, each gzipped (``.gz``) or raw.
    cache_dir : path or None
        Used when ``mnist_dir`` is None: ``<cache>/mnist/`` (default cache
        :func:`default_cache_dir`). Missing files are downloaded from the first mirror that
        answers and verified against their pinned checksums; cached files are re-verified.
    kind : "test" (10,000), "train" (60,000) or "all"
        "all" is train then test. From ``mnist_dir`` it uses the training files when they are
        present and the test files alone otherwise; from the cache it downloads both.
    mirrors : base URLs tried in order (each + file name).
    checksums : dict file name -> {"md5": ..., "sha256": ...}; default :data:`MNIST_FILES`.

    Returns
    -------
    images : ndarray (N, 28, 28) uint8, 0 background .. 255 ink (divide by 255 for [0, 1])
    labels : ndarray (N,) uint8, digits 0-9
    """
    if kind not in ("test", "train", "all"):
        raise NpnetError(f"kind must be 'test', 'train' or 'all', got {kind!r}")
    if mnist_dir is not None:
        folder = Path(mnist_dir).expanduser()
        if not folder.is_dir():
            raise NpnetError(f"mnist_dir {folder} is not a directory")
        present = {split: [_find(folder, stem) for stem in stems] for split, stems in _MNIST_SPLITS.items()}
        if kind == "all":
            splits = [s for s in ("train", "test") if all(present[s])]
            if not splits:
                raise NpnetError(f"no MNIST IDX files in {folder}: expected "
                                 f"t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)")
        else:
            splits = [kind]
        paths = []
        for split in splits:
            for stem, p in zip(_MNIST_SPLITS[split], present[split]):
                if p is None:
                    raise NpnetError(f"{folder} has no {stem} or {stem}.gz (needed for kind={kind!r})")
            paths.append(present[split])
    else:
        checksums = MNIST_FILES if checksums is None else checksums
        folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "mnist"
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
