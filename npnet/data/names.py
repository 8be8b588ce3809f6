"""Surnames by language: the loader (a local folder, or the verified cache) and the characters.

18 ``Language.txt`` files, one name per line, from PyTorch's char-RNN tutorial; names become
one-hot (T_i, 56) sequences over :data:`ALPHABET` after :func:`normalise_name`. Nothing here
knows about models; arrays are plain NumPy.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import string
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..layer import NpnetError, as_float_dtype
from .download import DownloadError, download, find_data_dir, verify_file

__all__ = [
    "NAMES_URL", "NAMES_SHA256", "NAMES_CONTENT_SHA256", "NAMES_LANGUAGES", "NamesData", "load_names",
    "names_content_digest", "ALPHABET", "normalise_name", "encode_names", "decode_name",
]


# -- the data set ------------------------------------------------------------------------------
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
        A folder of ``Language.txt`` files (e.g. ``data/names`` of the tutorial archive); it
        must exist. Blank lines are skipped and surrounding whitespace stripped; duplicates kept.
    cache_dir : path or None
        Used when ``data_dir`` is None: the folder is ``<cache_dir>/names/``; without it,
        :func:`npnet.data.find_data_dir` ``("names")`` (``$NPNET_DATA/names`` or
        ``~/.cache/npnet/names``). If that folder holds the files they are read; otherwise the
        archive at ``url`` is downloaded next to it (``names-data.zip``), verified, and its
        ``names/*.txt`` members unpacked into it.
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
        return _read_names_dir(find_data_dir("names", data_dir))
    folder = Path(cache_dir).expanduser() / "names" if cache_dir is not None else find_data_dir("names")
    root = folder.parent
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


