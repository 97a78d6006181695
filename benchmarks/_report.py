"""Results of the Table 5 protocol beside the paper: environment, predictions, ratios, and the output files.

Absolute times across machines do not compare, so every time column also appears as a ratio to a
reference model (CDNet by default): the paper's RTX 2080 times, ours, and the forward time the
latency table predicts.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from benchmarks._device import EMPTY
from benchmarks._protocol import PHASES, ModelResult, ProtocolConfig
from hwnas._io import write_json_atomic
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.report.model_report import predict_on_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaperEntry:
    """One row of the seed's Table 5 (RTX 2080, 19,281 Market-1501 test images, batch 128, mean of 5 runs)."""

    label: str
    params_m: float
    flops_m: float
    time_s: float
    rank1: float
    mAP: float


PAPER_DEVICE = "NVIDIA GeForce RTX 2080"
PAPER_NUM_IMAGES = 19281
PAPER_TABLE5: dict[str, PaperEntry] = {
    "resnet50_bot": PaperEntry("BoT (ResNet-50)", 25.1, 4053.3, 248.3, 94.5, 85.9),
    "osnet": PaperEntry("OSNet", 2.2, 979.0, 156.0, 94.8, 84.9),
    "gdas": PaperEntry("GDAS", 4.0, 1109.2, 150.9, 89.1, 73.2),
    "cdnet": PaperEntry("CDNet", 1.8, 955.1, 142.4, 95.1, 86.0),
}


@dataclass(frozen=True)
class Prediction:
    """Forward time (s) a latency table predicts for the run, or why there is none."""

    seconds: float | None
    note: str


def predict_forward(model: torch.nn.Module, table_name: str, num_images: int, cfg: ProtocolConfig) -> Prediction:
    """Table latency of the model's genotype, scaled from the table's batch size to ``num_images`` images.

    Only searched networks (CNet/CDNet genotypes) have table entries; for others this is ``n/a``.
    """
    p = predict_on_table(model, table_name, (cfg.height, cfg.width))
    if p.latency_ms is None or not p.batch_size:
        return Prediction(None, p.note)
    note = f"{table_name}: {p.latency_ms:.2f} ms per batch of {p.batch_size} ({p.dtype}, {p.provenance})"
    return Prediction(p.latency_ms * num_images / p.batch_size / 1000.0, note)


def environment(cfg: ProtocolConfig, argv: Sequence[str]) -> dict[str, object]:
    """Device, software versions, machine load and the command, recorded with every result."""
    device = torch.device(cfg.device)
    versions = software_versions(("numpy", "PIL", "triton", "fvcore"))
    return {
        "device": device_name(device), "device_type": device.type, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "software": versions, "git_commit": _git_commit(),
        "load_average": machine_load() or None,
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m benchmarks.inference_time " + " ".join(argv),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def build_rows(results: Sequence[ModelResult], predictions: dict[str, Prediction], reference: str) -> list[dict]:
    """One row per model: ours, the paper's and the predicted times, each also as a ratio to ``reference``."""
    by_name = {r.model: r for r in results}
    ref = by_name.get(reference)
    ref_paper = PAPER_TABLE5.get(reference)
    ref_pred = predictions.get(reference)
    rows = []
    for r in results:
        paper = PAPER_TABLE5.get(r.model)
        pred = predictions.get(r.model, Prediction(None, "n/a"))
        row = {
            "model": r.model, "paper_label": paper.label if paper else None, "num_images": r.num_images,
            "num_query": r.num_query, "num_gallery": r.num_gallery, "params_m": r.params_m, "flops_m": r.flops_m,
            "runs_s": [run.total for run in r.runs], "rank1": r.rank1, "mAP": r.mAP,
            "images_per_s": r.num_images / r.mean(),
            "paper": None if paper is None else {"params_m": paper.params_m, "flops_m": paper.flops_m,
                                                 "time_s": paper.time_s, "rank1": paper.rank1, "mAP": paper.mAP},
            "predicted_forward_s": pred.seconds, "prediction_note": pred.note,
            "ratio_to_reference": {
                "measured": _ratio(r.mean(), ref.mean() if ref else None),
                "measured_forward": _ratio(r.mean("forward"), ref.mean("forward") if ref else None),
                "paper": _ratio(paper.time_s if paper else None, ref_paper.time_s if ref_paper else None),
                "predicted": _ratio(pred.seconds, ref_pred.seconds if ref_pred else None),
            },
        }
        for phase in ("total", *PHASES):
            row[f"{phase}_mean_s"], row[f"{phase}_std_s"] = r.mean(phase), r.std(phase)
        rows.append(row)
    return rows


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return EMPTY if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


TABLE_HEADER = ("model", "params M", "MFLOPs", "ours s (mean ± sd)", "data", "h2d", "forward", "rank",
                "img/s", "paper s", "pred fwd s", "ours/ref", "paper/ref", "pred/ref")


def table_lines(rows: Sequence[dict]) -> list[tuple[str, ...]]:
    """Table cells per model, in :data:`TABLE_HEADER` order."""
    out = []
    for row in rows:
        ratio = row["ratio_to_reference"]
        out.append((
            row["model"], _fmt(row["params_m"]), _fmt(row["flops_m"], ".1f"),
            f"{row['total_mean_s']:.2f} ± {row['total_std_s']:.2f}",
            *(_fmt(row[f"{p}_mean_s"]) for p in PHASES), _fmt(row["images_per_s"], ".1f"),
            _fmt(row["paper"]["time_s"] if row["paper"] else None, ".1f"), _fmt(row["predicted_forward_s"]),
            _fmt(ratio["measured"], ".3f"), _fmt(ratio["paper"], ".3f"), _fmt(ratio["predicted"], ".3f"),
        ))
    return out


def aligned_table(rows: Sequence[dict]) -> str:
    """Plain-text table for stdout, columns padded to their widest cell."""
    lines = [TABLE_HEADER, *table_lines(rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADER))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def markdown(payload: dict) -> str:
    """results.md: the table, the paper's setting beside ours, notes on predictions and the environment."""
    env, cfg, rows = payload["environment"], payload["config"], payload["results"]
    md = [f"# Inference time (seed Table 5 protocol) on {env['device']}", "",
          f"Command: `{env['command']}`  ", f"Date: {env['date_utc']}, git {env['git_commit']}, "
          f"load average {env['load_average']} at the start, {env.get('load_average_end')} at the end  ",
          f"Setting: {rows[0]['num_images'] if rows else 0} images ({payload['dataset']}), batch {cfg['batch_size']}, "
          f"{cfg['dtype']}, backend {cfg['backend']}, channels-last {cfg['channels_last']}, workers {cfg['workers']}, "
          f"{cfg['runs']} runs after {cfg['warmup']} warm-up passes, input {cfg['height']}x{cfg['width']}.  ",
          f"Paper: {PAPER_DEVICE}, {PAPER_NUM_IMAGES} images, batch 128, mean of 5 runs. Ratios are to "
          f"`{payload['reference']}`.", "",
          "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    md += ["| " + " | ".join(line) + " |" for line in table_lines(rows)]
    md += ["", "Times in seconds; phases are means over runs. `pred fwd` is the forward time the "
           f"`{payload['latency_table']}` latency table predicts for this many images.", ""]
    md += [f"- {row['model']}: {row['prediction_note']}; rank-1 {_fmt(row['rank1'], '.3f')}, "
           f"mAP {_fmt(row['mAP'], '.3f')} (weights as created: the scores only check the pipeline)" for row in rows]
    soft = ", ".join(f"{k} {v}" for k, v in env["software"].items())
    md += ["", f"Software: {soft}. Platform: {env['platform']}; {env['cpu_count']} CPUs, "
           f"{env['torch_threads']} torch threads.", ""]
    return "\n".join(md)


def bar_chart(rows: Sequence[dict], path: Path, title: str) -> Path:
    """Left: our time per model split into phases; right: time ratios to the reference (paper/ours/predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["model"] for r in rows]
    bottom = [0.0] * len(rows)
    for phase in PHASES:
        values = [r[f"{phase}_mean_s"] for r in rows]
        ax1.bar(names, values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax1.errorbar(names, [r["total_mean_s"] for r in rows], yerr=[r["total_std_s"] for r in rows], fmt="none",
                 ecolor="black", capsize=4)
    ax1.set_ylabel("seconds per run")
    ax1.set_title("measured (mean ± sd of total)")
    ax1.legend()
    width = 0.27
    for k, (key, label) in enumerate((("paper", "paper RTX 2080"), ("measured", "ours"), ("predicted", "table"))):
        values = [r["ratio_to_reference"][key] or 0.0 for r in rows]
        ax2.bar([i + (k - 1) * width for i in range(len(rows))], values, width, label=label)
    ax2.set_xticks(range(len(rows)), names)
    ax2.axhline(1.0, color="grey", lw=0.8)
    ax2.set_ylabel("time / reference model")
    ax2.set_title("ratios (0 = not available)")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_outputs(payload: dict, out_dir: Path) -> dict[str, Path]:
    """results.json, results.md and inference_time.png in ``out_dir`` (each written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "md": out_dir / "results.md", "png": out_dir / "inference_time.png"}
    write_json_atomic(paths["json"], payload)
    tmp = paths["md"].with_name("results.md.tmp")
    tmp.write_text(markdown(payload))
    os.replace(tmp, paths["md"])
    bar_chart(payload["results"], paths["png"], f"Table 5 protocol on {payload['environment']['device']}")
    return paths

