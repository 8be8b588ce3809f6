"""Where data lives and how it gets there: find_data_dir, the cache, and verified downloads.

One rule for every loader, script and test: an explicit folder if given, else ``$NPNET_DATA/<name>``,
else ``~/.cache/npnet/<name>`` (:func:`find_data_dir`). A download streams to a temporary file,
is checked against a pinned checksum and only then renamed, so a file under its final name is
always complete and verified. Nothing here knows what the files contain.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..layer import NpnetError

__all__ = ["DownloadError", "download", "verify_file", "default_cache_dir", "find_data_dir"]


class DownloadError(NpnetError):
    """A download failed, or a file does not match its pinned checksum (a ValueError)."""


_CHUNK = 1 << 20  # 1 MiB


def default_cache_dir() -> Path:
    """The data root: ``$NPNET_DATA`` if set (and not empty), else ``~/.cache/npnet``."""
    env = os.environ.get("NPNET_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "npnet"


def find_data_dir(name: str, data_dir=None) -> Path:
    """The folder of data set ``name`` (e.g. ``"names"``, ``"mnist"``, ``"tinyshakespeare"``).

    Parameters
    ----------
    name : str
        The data set's folder name under the data root (a single path component).
    data_dir : path or None
        An explicit folder. If given it is returned as is (``~`` expanded) and must be an
        existing directory, else :class:`npnet.NpnetError` names it.

    Returns
    -------
    pathlib.Path
        ``data_dir`` if given, else ``$NPNET_DATA/<name>`` if ``NPNET_DATA`` is set, else
        ``~/.cache/npnet/<name>``. The last two may not exist yet: the loaders download into
        them and verify what they download.
    """
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise NpnetError(f"name must be one folder name such as 'names' or 'mnist', got {name!r}")
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise NpnetError(f"data_dir {str(folder)!r} for the {name} data is not a directory "
                             f"(expected an existing folder)")
        return folder
    return default_cache_dir() / name


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

