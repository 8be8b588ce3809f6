"""The former ``npnet.datasets`` module, kept so that every name it had still imports from it.

The code lives by source: :mod:`npnet.data.download` (the cache, ``find_data_dir``, verified
downloads), :mod:`npnet.data.names` (surnames), :mod:`npnet.data.mnist` (digits) and
:mod:`npnet.data.batching` (``stratified_split``). ``npnet.datasets`` is an alias of this module.
"""
from ..layer import NpnetError  # noqa: F401  (importable from here before the split)
from .batching import stratified_split
from .download import DownloadError, default_cache_dir, download, find_data_dir, verify_file
from .mnist import MNIST_FILES, MNIST_MIRRORS, load_mnist, read_idx
from .names import (ALPHABET, NAMES_CONTENT_SHA256, NAMES_LANGUAGES, NAMES_SHA256, NAMES_URL, NamesData,
                    decode_name, encode_names, load_names, names_content_digest, normalise_name)

__all__ = [
    "DownloadError", "download", "verify_file", "default_cache_dir", "find_data_dir",
    "NAMES_URL", "NAMES_SHA256", "NAMES_CONTENT_SHA256", "NAMES_LANGUAGES", "NamesData", "load_names",
    "names_content_digest", "ALPHABET", "normalise_name", "encode_names", "decode_name",
    "stratified_split", "MNIST_MIRRORS", "MNIST_FILES", "load_mnist", "read_idx",
]
