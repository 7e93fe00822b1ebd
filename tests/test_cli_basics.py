import subprocess
import sys


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "jax_llm", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "ime" in out.stdout


def test_unknown_command_fails():
    out = subprocess.run([sys.executable, "-m", "jax_llm", "nonsense"], capture_output=True, text=True)
    assert out.returncode != 0
