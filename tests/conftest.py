"""Shared test fixtures: seeded generators, and the data folder every test and subprocess uses.

The data sets are never in the repository. When the machine's shared copy exists next to the
checkout (``../shared/data``), ``NPNET_DATA`` points at it -- set here at import, before any test
runs, so scripts started as subprocesses inherit it -- unless ``NPNET_DATA`` is already set.
Tests find a data set with ``npnet.data.find_data_dir(name)``, never by a path of their own.
"""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    os.environ.setdefault("NPNET_DATA", str(SHARED_DATA))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
