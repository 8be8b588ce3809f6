"""Fixtures of the data tests: the shared data sets (found through npnet.data.find_data_dir, so
NPNET_DATA decides; skipped only if absent) and a local HTTP server for the download tests."""
import functools
import http.server
import threading

import pytest

from npnet.data import find_data_dir


@pytest.fixture
def shared_names_dir():
    path = find_data_dir("names")
    if not sorted(path.glob("*.txt")):
        pytest.skip(f"names data not found at {path} (set NPNET_DATA)")
    return path


@pytest.fixture
def shared_mnist_dir():
    path = find_data_dir("mnist")
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST data not found at {path} (set NPNET_DATA)")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(folder, base_url): an HTTP server on 127.0.0.1 (ephemeral port) serving ``folder``."""
    root = tmp_path / "www"
    root.mkdir()
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
