"""The README's commands, run as written in a fresh shell: the first screen's (train, generate) with no network,
no mirror and an empty cache; the others with the corpus mirror standing in for the network."""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def wait_for_page(url: str, proc, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            assert time.time() < deadline, f"{url} never answered"
            time.sleep(0.5)


def test_readme_commands_run_as_written(tmp_path, data_dir, offline):
    commands = readme_commands()
    assert [c.split()[:2] for c in commands[:2]] == [["jax-llm", "train"], ["jax-llm", "generate"]]
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    mirrored = {**os.environ, "JAX_LLM_DATA_DIR": str(data_dir), "JAX_LLM_CACHE_DIR": str(tmp_path / "cache"),
                "PATH": path}
    outputs = {}
    for i, command in enumerate(commands):
        env = {**offline.env, "PATH": path} if i < 2 else mirrored
        if command.startswith("jax-llm train"):
            command += " --max-steps 20"  # the README's run is the preset's 1000 steps; 20 keep the suite fast
        if command.startswith("jax-llm ime serve"):
            proc = subprocess.Popen(command, shell=True, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
            try:
                port = re.search(r"--port (\d+)", command).group(1)
                assert "<html" in wait_for_page(f"http://127.0.0.1:{port}/", proc).lower()
            finally:
                os.killpg(proc.pid, 2)
                proc.communicate(timeout=60)
            continue
        r = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (command, r.stderr[-2000:])
        outputs[command.split()[1] if command.startswith("jax-llm") else command] = r.stdout
    assert (tmp_path / "runs" / "tiny" / "checkpoints" / "20").is_dir()
    assert offline.requests == []  # the first screen trained on the embedded text
    assert outputs["generate"].startswith("ROMEO:") and len(outputs["generate"]) > 100
    typed = next(v for k, v in outputs.items() if "ime type" in k)
    assert "what is in a name" in typed
