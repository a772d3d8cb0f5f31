"""A run's ``metrics.jsonl``: one JSON row per optimizer step, written by rank 0 only.

Rules: a resumed run keeps the rows up to its checkpoint and drops the later ones (those of the killed run), so
the file always reads as one run; every row is flushed as it is written.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss_curve.png"


def read_metrics(path: Path, upto: int) -> list[dict]:
    """Rows of ``metrics.jsonl`` up to step ``upto`` (a resumed run drops those after its checkpoint)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto]


class MetricsLog:
    """``out/metrics.jsonl`` from step ``start`` on; on ranks other than 0 it holds no rows and writes nothing."""

    def __init__(self, out: Path, start: int, main: bool) -> None:
        self.rows = read_metrics(out / METRICS_FILE, start) if main else []
        self._file: IO[str] | None = None
        if main:
            out.mkdir(parents=True, exist_ok=True)
            (out / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in self.rows))
            self._file = open(out / METRICS_FILE, "a")

    def write(self, row: dict) -> None:
        """Append one row (rank 0)."""
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()

    def close(self) -> None:
        """Close the file (rank 0)."""
        if self._file is not None:
            self._file.close()


def plot_losses(rows: list[dict], path: Path, curves: tuple[tuple[str, str], ...], ylabel: str | None = None) -> None:
    """The metrics columns ``curves`` ((key, label) pairs) against step, log scale, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in rows]
    for key, label in curves:
        ax.plot(steps, [r[key] for r in rows], label=label)
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
