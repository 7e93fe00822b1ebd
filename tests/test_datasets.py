"""The download path for real: a local HTTP server, sha256 checks, the cache, the mirror, the embedded copy."""

import dataclasses
import functools
import gzip
import hashlib
import http.server
import threading
import zipfile

import pytest

from jax_llm import texts
from jax_llm.errors import UserError
from jax_llm.datasets import DATASETS, fetch, resolve
from jax_llm.textfile import read_text, sha256_of


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves tmp_path/www on 127.0.0.1; `requests` lists the paths asked for."""
    monkeypatch.delenv("JAX_LLM_DATA_DIR", raising=False)  # no mirror: really download
    root = tmp_path / "www"
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(d):
    return [p for p in d.rglob("*") if p.is_file()] if d.exists() else []


def test_download_verifies_and_caches(server, tmp_path, data_dir):
    root, url, requests = server
    (root / "input.txt").write_bytes((data_dir / "tinyshakespeare.txt").read_bytes())
    ds = dataclasses.replace(DATASETS["tinyshakespeare"], url=f"{url}/input.txt", embedded=None)
    cache = tmp_path / "cache"
    got = fetch(ds, cache_dir=cache)
    assert got == cache / "tinyshakespeare.txt" and sha(got) == ds.sha256
    assert fetch(ds, cache_dir=cache) == got and requests == ["/input.txt"]  # second time: from the cache
    assert files_under(cache) == [got]  # no temporary files left behind


def test_wikitext_member_is_extracted_from_the_zip(server, tmp_path, data_dir):
    root, url, _ = server
    with zipfile.ZipFile(root / "wikitext-2-raw-v1.zip", "w") as z:
        z.write(data_dir / "wikitext-2" / "wiki.test.raw", "wikitext-2-raw/wiki.test.raw")
    ds = dataclasses.replace(DATASETS["wikitext2-test"], url=f"{url}/wikitext-2-raw-v1.zip",
                             archive_sha256=sha(root / "wikitext-2-raw-v1.zip"))
    got = fetch(ds, cache_dir=tmp_path / "cache")
    assert sha(got) == DATASETS["wikitext2-test"].sha256 == ds.sha256
    assert files_under(tmp_path / "cache") == [got]  # the archive itself is not kept


def test_corrupt_download_is_refused_and_nothing_cached(server, tmp_path, data_dir):
    root, url, _ = server
    data = bytearray((data_dir / "tinyshakespeare.txt").read_bytes())
    data[1000] ^= 1
    (root / "input.txt").write_bytes(bytes(data))
    ds = dataclasses.replace(DATASETS["tinyshakespeare"], url=f"{url}/input.txt", embedded=None)
    with pytest.raises(UserError, match="checksum mismatch") as e:
        fetch(ds, cache_dir=tmp_path / "cache")
    assert "\n" not in str(e.value)
    assert files_under(tmp_path / "cache") == []


def test_missing_file_on_the_server(server, tmp_path):
    _, url, _ = server
    ds = dataclasses.replace(DATASETS["tinyshakespeare"], url=f"{url}/nope.txt", embedded=None)
    with pytest.raises(UserError, match="could not download"):
        fetch(ds, cache_dir=tmp_path / "cache")
    assert files_under(tmp_path / "cache") == []


def test_embedded_copy_stands_in_for_the_download(server, tmp_path):
    _, url, requests = server
    ds = dataclasses.replace(DATASETS["tinyshakespeare"], url=f"{url}/input.txt")
    cache = tmp_path / "cache"
    got = fetch(ds, cache_dir=cache)
    assert got == cache / "tinyshakespeare.txt" and sha(got) == ds.sha256
    assert requests == [] and files_under(cache) == [got]


def test_damaged_embedded_copy_is_refused_and_nothing_cached(tmp_path, monkeypatch, data_dir):
    monkeypatch.delenv("JAX_LLM_DATA_DIR", raising=False)
    package = tmp_path / "package"
    package.mkdir()
    monkeypatch.setattr(texts.resources, "files", lambda _: package)
    packed = gzip.compress((data_dir / "tinyshakespeare.txt").read_bytes())
    for content, msg in ((packed[: len(packed) // 2], "missing or damaged"), (packed[:-8] + bytes(8), "damaged"),
                         (gzip.compress(b"other bytes"), "checksum mismatch"), (None, "missing")):
        (package / "tinyshakespeare.txt.gz").unlink(missing_ok=True)
        if content is not None:
            (package / "tinyshakespeare.txt.gz").write_bytes(content)
        with pytest.raises(UserError, match=msg) as e:
            fetch(DATASETS["tinyshakespeare"], cache_dir=tmp_path / "cache")
        assert "\n" not in str(e.value) and "reinstall jax-llm" in str(e.value)
        assert files_under(tmp_path / "cache") == []


def test_mirror_names_and_paths(data_dir, tmp_path):
    assert resolve("tinyshakespeare", data_dir) == data_dir / "tinyshakespeare.txt"
    assert resolve("wikitext2-test", data_dir) == data_dir / "wikitext-2" / "wiki.test.raw"
    assert sha256_of(resolve("shakespeare", data_dir)) == DATASETS["shakespeare"].sha256
    bad = tmp_path / "mirror"
    bad.mkdir()
    (bad / "tinyshakespeare.txt").write_text("not the real file")
    with pytest.raises(UserError, match="checksum mismatch"):
        resolve("tinyshakespeare", bad)
    with pytest.raises(UserError, match="unknown dataset"):
        resolve("no-such-dataset", data_dir)
    own = tmp_path / "own.txt"
    own.write_text("hello")
    assert resolve(str(own)) == own


def test_read_text_rejects_binary_and_non_utf8(tmp_path):
    (tmp_path / "b").write_bytes(b"abc\0def")
    (tmp_path / "l").write_bytes("caf\u00e9".encode("latin-1"))
    for name, msg in (("b", "binary"), ("l", "UTF-8")):
        with pytest.raises(UserError, match=msg):
            read_text(tmp_path / name)
