"""What feeds a model: batching (``Stream``, ``take``, ``minibatches``, ``pad_sequences``,
``bucket_by_length``, ``stratified_split``), the synthetic task generators (:mod:`npnet.data.tasks`)
and the real data sets by source (:mod:`~npnet.data.names`, :mod:`~npnet.data.mnist`,
:mod:`~npnet.data.text`), found through
:func:`find_data_dir` and fetched by :mod:`~npnet.data.download`. Depends on nothing but NumPy."""
from .batching import *  # noqa: F401,F403  the names of the former npnet.data module
from .batching import __all__ as _batching_all
from .download import find_data_dir
from .names import load_names
from .mnist import load_mnist
from .text import (CharVocab, TextStreams, bigram_nats, bits_per_char, load_tinyshakespeare,
                   nats_per_char, perplexity, split_text, stream_nats, unigram_nats)
from . import tasks, download, names, mnist, text, datasets

__all__ = list(_batching_all) + ["find_data_dir", "load_names", "load_mnist", "load_tinyshakespeare",
                                 "CharVocab", "split_text", "TextStreams", "nats_per_char",
                                 "bits_per_char", "perplexity", "unigram_nats", "bigram_nats", "stream_nats",
                                 "tasks", "download", "names", "mnist", "text", "datasets"]
