"""The default model without network: `shakespeare` cannot be downloaded, so `ime type` trains its `kn` model
on the embedded tinyshakespeare instead, once, and still converts the README's line."""

import subprocess
import sys
from pathlib import Path

SHAKESPEARE_HOST = "ocw.mit.edu"  # where the `shakespeare` dataset downloads from


def test_default_model_falls_back_to_the_embedded_text(offline):
    cache = Path(offline.env["JAX_LLM_CACHE_DIR"])
    for run in (1, 2):  # the second run loads the fallback model the first one trained
        r = subprocess.run([sys.executable, "-m", "jax_llm", "ime", "type"], input="whisina na\n", env=offline.env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["what is in a name"]
        assert "embedded tinyshakespeare" in r.stderr
        assert len(offline.requests) == run and SHAKESPEARE_HOST in offline.requests[-1]  # tried, refused
    assert (cache / "models" / "kn-tinyshakespeare" / "model.json").is_file()
    assert not (cache / "models" / "kn-shakespeare").exists()  # the real default is trained once online
