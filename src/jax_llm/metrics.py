"""metrics.jsonl (one JSON object a line) and the loss-curve PNG drawn from it."""

import json
import math
import sys
from pathlib import Path

from jax_llm.errors import UserError


class MetricsLog:
    def __init__(self, path: Path, resume_step: int):
        """Opening at `resume_step` drops rows logged after it: a resumed run logs them again."""
        self.path = Path(path)
        if self.path.exists():
            rows = read_metrics(self.path)
            kept = [r for r in rows if r.get("step", 0) <= resume_step] if resume_step else []
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, **row) -> None:
        append(self.path, **row)


def append(path: Path, **row) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def bits_per_byte(loss: float, bytes_per_token: float) -> float:
    """Nats per token to bits per UTF-8 byte of the text scored: loss x tokens / bytes / ln 2. Runs with
    different tokenizers, or on different languages, compare on this scale (over the same text)."""
    return loss / bytes_per_token / math.log(2)


def bpb_field(name: str, loss: float, bytes_per_token: float | None) -> dict:
    """{name: bits per byte} for a metrics row, or {} where the streams are not text (the input method)."""
    return {name: bits_per_byte(loss, bytes_per_token)} if bytes_per_token else {}


def read_metrics(path: Path) -> list[dict]:
    """The rows; a last line torn by a killed process is left out with a warning (any other bad line is
    a damaged file: one line naming it)."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise UserError(f"{path}: line {i + 1} is not JSON; the file is damaged") from None
            print(f"warning: {path}: left out its torn last line ({line[:60]!r})", file=sys.stderr)
    return rows


def plot_losses(metrics_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png_path)
