import http.server
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import cut_corpus

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The offline corpus mirror: $JAX_LLM_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("JAX_LLM_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    assert d.is_dir(), f"corpus mirror not found at {d}; set JAX_LLM_DATA_DIR"
    return d


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, data_dir) -> Path:
    """60 KB of tinyshakespeare: enough for the tiny training runs of the core tests."""
    return cut_corpus(data_dir, tmp_path_factory.mktemp("corpus") / "shakespeare.txt")


@dataclass
class Offline:
    env: dict[str, str]  # for the commands a test starts
    requests: list[str]  # every request that tried the network, as "METHOD target"


class _RefusingProxy(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def refuse(self):
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_error(403, "no network in this test")

    do_GET = do_HEAD = do_POST = do_CONNECT = refuse


@pytest.fixture
def offline(tmp_path):
    """A user's fresh machine without network: an empty mirror, an empty cache and home, and every HTTP(S)
    request sent to a local proxy that refuses it and records it (so a test can say what was tried)."""
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingProxy)
    proxy.requests = []
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    dirs = {name: tmp_path / name for name in ("empty-mirror", "empty-cache", "home", "xdg-data")}
    for d in dirs.values():
        d.mkdir()
    address = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update(JAX_LLM_DATA_DIR=str(dirs["empty-mirror"]), JAX_LLM_CACHE_DIR=str(dirs["empty-cache"]),
               HOME=str(dirs["home"]), XDG_DATA_HOME=str(dirs["xdg-data"]),
               http_proxy=address, https_proxy=address, HTTP_PROXY=address, HTTPS_PROXY=address)
    yield Offline(env, proxy.requests)
    proxy.shutdown()
    proxy.server_close()
