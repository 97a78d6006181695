"""Searches at several latency weights and the Pareto front of predicted latency vs the supernet's eval-mode
validation accuracy."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from hwnas._io import save_figure_atomic, write_json_atomic, write_text_atomic
from hwnas.errors import UsageError
from hwnas.search._checkpoint import CHECKPOINT_NAME, has_checkpoint
from hwnas.search._data import SearchData
from hwnas.search.config import SearchConfig
from hwnas.search.runner import run_search

logger = logging.getLogger(__name__)


def parse_weights(text: str) -> list[float]:
    """``"0,0.01,1"`` -> [0.0, 0.01, 1.0]; every weight a plain ASCII number >= 0 (as every number flag takes it:
    no ``1_0``, no other scripts' digits, no empty items; spaces after a comma are fine), and no two alike (each
    names its folder ``w<weight>``)."""
    from hwnas._cli import PLAIN_NUMBER, clip

    parts = [w.strip(" ") for w in text.split(",")]  # "0, 0.01" as typed in quotes
    weights = [float(w) + 0.0 for w in parts if PLAIN_NUMBER.fullmatch(w)] if all(PLAIN_NUMBER.fullmatch(w) for w in parts) \
        else []
    if not weights or any(not math.isfinite(w) or w < 0 for w in weights):
        raise UsageError(f"bad weights {clip(text)!r}, --sweep-latency-weight, expected comma-separated finite numbers "
                         ">= 0 like 0,0.01,1")
    check_distinct(weights, "--sweep-latency-weight")
    return weights


def check_distinct(weights: Sequence[float], where: str) -> None:
    """Two weights that name the same sweep folder (``0,0``, ``0,-0``, ``0.1,0.10``) would overwrite one search with
    the other."""
    names = [sweep_dir(Path(), w).name for w in weights]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"repeated weight(s) {', '.join(n[1:] for n in repeated)}, {where}, expected distinct "
                         "latency weights (one search and one folder w<weight> each)")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (latency, accuracy) points: True where no other point is at least as fast and as accurate and
    strictly better in one of them."""
    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])

    return [not any(dominates(q, p) for q in points) for p in points]


def sweep_dir(output: Path, weight: float) -> Path:
    """The folder of the sweep's search at latency ``weight``: ``output/w<weight>``."""
    return output / f"w{weight + 0.0:g}"  # -0.0 + 0.0 is 0.0: one folder for zero


def run_sweep(config: SearchConfig, data: SearchData, weights: Sequence[float], output: Path, table: Any,
              device: str = "cpu", resume: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """One search per weight into ``output/w<weight>``; returns one row per weight, Pareto flags set."""
    if table is None:
        raise UsageError("a latency sweep without a latency table, --latency-table, expected a table name or path")
    rows = []
    for w in weights:
        sub = sweep_dir(output, w)
        again = resume and has_checkpoint(sub / "checkpoints" / CHECKPOINT_NAME)
        logger.info("sweep: latency weight %g -> %s", w, sub)
        result, _ = run_search(config.replace(latency_weight=w), data, sub, table, device, again, progress)
        rows.append({"latency_weight": w, "genotype": result.genotype.tostr(),
                     "predicted_latency_ms": table.genotype_latency_ms(result.genotype),
                     "expected_latency_ms": result.expected_latency_ms,
                     "val_acc_eval_mode": result.val_acc_eval_mode,
                     "val_acc_train_mode": result.val_acc_train_mode,
                     "alpha_entropy_fraction": result.decisiveness.mean_entropy_fraction,
                     "alpha_margin": result.decisiveness.mean_margin, "undecided": result.decisiveness.undecided,
                     "output": str(sub)})
    flags = pareto_front([(r["predicted_latency_ms"], r["val_acc_eval_mode"]) for r in rows])
    for row, flag in zip(rows, flags):
        row["pareto"] = flag
    return rows


def render_sweep(rows: Sequence[dict[str, Any]], table_name: str) -> str:
    lines = [f"# Latency-weight sweep ({table_name})", "",
             "Supernet val acc (eval mode): identity top-1 in eval mode, one pass over the validation split. "
             "Val acc (train mode): mean over the last epoch's alpha-step batches. Alpha entropy as a fraction of "
             "ln n (mean over layers); runs above 0.98 did not decide (their genotype is close to arbitrary).", "",
             "| latency weight | genotype | predicted latency (ms) | supernet val acc (eval mode) | "
             "val acc (train mode) | alpha entropy / ln n | Pareto |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        undecided = " (undecided)" if r["undecided"] else ""
        lines.append(f"| {r['latency_weight']:g} | `{r['genotype']}` | {r['predicted_latency_ms']:.3f} | "
                     f"{r['val_acc_eval_mode']:.3f} | {_fmt(r['val_acc_train_mode'])} | "
                     f"{r['alpha_entropy_fraction']:.4f}{undecided} | {'yes' if r['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def plot_sweep(rows: Sequence[dict[str, Any]], table_name: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["predicted_latency_ms"])
    ax.plot([r["predicted_latency_ms"] for r in front], [r["val_acc_eval_mode"] for r in front], "-",
            color="tab:red", label="Pareto front")
    for r in rows:
        ax.scatter(r["predicted_latency_ms"], r["val_acc_eval_mode"], color="tab:red" if r["pareto"] else "tab:gray")
        ax.annotate(f"w={r['latency_weight']:g}", (r["predicted_latency_ms"], r["val_acc_eval_mode"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"predicted latency on {table_name} (ms)")
    ax.set_ylabel("supernet val acc (eval mode)")
    ax.legend()
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def write_sweep(rows: Sequence[dict[str, Any]], table_name: str, output: Path) -> dict[str, Path]:
    """pareto.json, pareto.md and pareto.png in ``output``."""
    md = write_text_atomic(output / "pareto.md", render_sweep(rows, table_name))
    return {"json": write_json_atomic(output / "pareto.json", {"latency_table": table_name, "runs": list(rows)}),
            "md": md, "png": plot_sweep(rows, table_name, output / "pareto.png")}


def load_sweep(path: Path) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())["runs"]
