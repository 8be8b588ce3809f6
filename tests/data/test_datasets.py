"""npnet.datasets (and npnet.data.datasets), the module from before the split by source, still
exposes every public name it had; npnet.data exports the loaders and the batching tools."""
import importlib

import pytest

import npnet
import npnet.data

# Every public name of npnet.datasets before npnet/data was split into download/names/mnist.
FORMER_NAMES = [
    "ALPHABET", "DownloadError", "MNIST_FILES", "MNIST_MIRRORS", "NAMES_CONTENT_SHA256",
    "NAMES_LANGUAGES", "NAMES_SHA256", "NAMES_URL", "NamesData", "NpnetError", "decode_name",
    "default_cache_dir", "download", "encode_names", "load_mnist", "load_names",
    "names_content_digest", "normalise_name", "read_idx", "stratified_split", "verify_file",
]


@pytest.mark.parametrize("module", ["npnet.datasets", "npnet.data.datasets"])
def test_former_datasets_module_keeps_every_name(module):
    mod = importlib.import_module(module)
    missing = [n for n in FORMER_NAMES if not hasattr(mod, n)]
    assert not missing, f"{module} lost {missing}"
    assert set(mod.__all__) <= set(dir(mod))
    ns = {}
    exec(f"from {module} import *", ns)
    assert set(mod.__all__) <= set(ns)
    assert mod is importlib.import_module("npnet.datasets")               # one module, two names
    assert npnet.datasets is mod


def test_names_live_in_their_source_modules():
    from npnet.data import batching, download, mnist, names
    from npnet.datasets import (DownloadError, load_mnist, load_names, stratified_split, download as dl,
                                verify_file, default_cache_dir, NAMES_URL, MNIST_FILES)
    assert load_names is names.load_names and NAMES_URL is names.NAMES_URL
    assert load_mnist is mnist.load_mnist and MNIST_FILES is mnist.MNIST_FILES
    assert dl is download.download and verify_file is download.verify_file
    assert DownloadError is download.DownloadError and default_cache_dir is download.default_cache_dir
    assert stratified_split is batching.stratified_split
    assert issubclass(DownloadError, npnet.NpnetError) and issubclass(DownloadError, ValueError)


def test_npnet_data_exports():
    for name in ("Stream", "take", "minibatches", "pad_sequences", "bucket_by_length",
                 "stratified_split", "find_data_dir", "load_names", "load_mnist", "tasks"):
        assert name in npnet.data.__all__ and hasattr(npnet.data, name), name
    assert npnet.pad_sequences is npnet.data.pad_sequences and npnet.tasks is npnet.data.tasks
