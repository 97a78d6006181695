"""Full model report: params, FLOPs and per-layer FLOPs, predicted latency on every shipped table, measured latency.

``python -m hwnas.report model --model cdnet [--genotype G] [--width-mult B] [--input-size 256x128]
[--latency-table NAME|PATH] [--device cpu] [--batch-size 1] [--threads N] [--no-measure] [--output DIR] [--json]``
prints Markdown (or JSON) and, with ``--output``, writes ``model_report.md`` and ``model_report.json``. Counts
follow DESIGN section 4 (conv + linear multiply-accumulates, eval mode, batch 1; parameters of the inference path).
A shipped table predicts only when it was made for the report's input size and width; a table named with
``--latency-table`` (e.g. the one a genotype was searched with) predicts at its own setting, as the search did.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwnas import _cli
from hwnas._io import write_json_atomic, write_text_atomic
from hwnas._modes import restore_flags, training_flags
from hwnas.errors import UsageError
from hwnas.models import check_input_size, create_model, list_models
from hwnas.profile import count_params, profile_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TablePrediction:
    """What one latency table predicts for the model's forward pass (ms per batch), or why it cannot."""

    table: str
    device: str | None
    provenance: str | None
    batch_size: int | None
    dtype: str | None
    latency_ms: float | None
    note: str


@dataclass(frozen=True)
class MeasureSpec:
    """How to time the forward pass here: ``repeats`` samples after ``warmup`` calls, at ``batch_size``."""

    device: str = "cpu"
    dtype: str = "fp32"
    batch_size: int = 1
    warmup: int = 3
    repeats: int = 10
    threads: int | None = None
    progress: bool = False  # a progress bar on stderr over the timing rounds

    def __post_init__(self) -> None:
        from hwnas.latency.measure import TORCH_DTYPES

        if self.dtype not in TORCH_DTYPES:
            raise UsageError(f"unknown dtype {self.dtype!r}, MeasureSpec.dtype, expected one of "
                             f"{', '.join(TORCH_DTYPES)}")
        for name, low in (("batch_size", 1), ("repeats", 3), ("warmup", 0)):
            if getattr(self, name) < low:
                raise UsageError(f"bad value {getattr(self, name)}, MeasureSpec.{name}, expected an integer >= {low}")


def predict_on_table(model: nn.Module, table_name: str, input_size: tuple[int, int],
                     at_table_setting: bool = False) -> TablePrediction:
    """Latency of the model's genotype on one table, checked against the table's resolution and width.

    Tables hold CNet/CDNet layer entries (plus the fixed stem/downsample/neck parts), so models without a
    searched genotype (OSNet, BoT, GDAS) get ``n/a``. With ``at_table_setting`` the genotype is priced at the
    table's own resolution and width (how a search prices it) and the note says when that differs from
    ``input_size`` and the model's width.
    """
    from hwnas.latency import LatencyTableError, load_table

    try:
        table = load_table(table_name)
    except (LatencyTableError, OSError, ValueError) as e:
        return TablePrediction(table_name, None, None, None, None, None, f"n/a: {e}")
    data = table.data
    base = dict(table=table_name, device=data.device.name, provenance=data.provenance.kind,
                batch_size=data.setting.batch_size, dtype=data.setting.dtype)
    genotype = getattr(getattr(model, "backbone", None), "genotype", None)
    if genotype is None or not hasattr(genotype, "space"):
        return TablePrediction(**base, latency_ms=None, note="n/a: the table has entries for CNet/CDNet layers only")
    width = getattr(model, "config", {}).get("width_mult")
    note = "fixed parts + the genotype's six layer entries"
    try:
        if at_table_setting:
            table.require(genotype.space)
            s = data.setting
            if tuple(s.resolution) != tuple(input_size) or (width is not None and float(width) != s.width_mult):
                note += (f", at the table's setting {s.resolution[0]}x{s.resolution[1]} width {s.width_mult} "
                         f"(this report: {input_size[0]}x{input_size[1]} width {width})")
        else:
            table.require(genotype.space, input_size, width)
        latency = table.genotype_latency_ms(genotype)
    except LatencyTableError as e:
        return TablePrediction(**base, latency_ms=None, note=f"n/a: {e}")
    return TablePrediction(**base, latency_ms=latency, note=note)


def predict_all(model: nn.Module, input_size: tuple[int, int], tables: Sequence[str] = ()) -> list[TablePrediction]:
    """One prediction per shipped latency table, then one per table in ``tables`` (names or paths, each at its
    own setting; a shipped name given there replaces its shipped row)."""
    from hwnas.latency import shipped_tables

    shipped = [predict_on_table(model, name, input_size) for name in shipped_tables() if name not in tables]
    return shipped + [predict_on_table(model, name, input_size, at_table_setting=True) for name in tables]


def measure_latency(model: nn.Module, input_size: tuple[int, int], spec: MeasureSpec) -> dict[str, Any]:
    """Median and interquartile range (ms) of the eval-mode forward at ``spec.batch_size`` on this machine.

    The model is timed in place; afterwards it has its device, dtype and every submodule's train/eval mode back.
    """
    from hwnas.envinfo import device_name, machine_load, software_versions
    from hwnas.latency.measure import TORCH_DTYPES, apply_threads, summarize, time_interleaved

    apply_threads(spec.threads)
    device = torch.device(spec.device)
    flags = training_flags(model)
    first = next(iter(model.parameters()), None)
    home = (first.device, first.dtype) if first is not None else (torch.device("cpu"), torch.float32)
    net = model.eval().to(device=device, dtype=TORCH_DTYPES[spec.dtype])
    x = torch.randn(spec.batch_size, 3, *input_size, device=device, dtype=TORCH_DTYPES[spec.dtype])
    try:
        (samples,) = time_interleaved([lambda: net(x)], device.type, spec.warmup, spec.repeats, spec.progress,
                                      desc="measuring latency")
    finally:
        model.to(device=home[0], dtype=home[1])
        restore_flags(flags)
    median, iqr = summarize(samples)
    return {"device": device_name(device.type), "device_type": device.type, "batch_size": spec.batch_size,
            "dtype": spec.dtype, "median_ms": median, "iqr_ms": iqr, "per_image_ms": median / spec.batch_size,
            "repeats": spec.repeats, "warmup": spec.warmup, "threads": torch.get_num_threads(),
            "load_average": machine_load(), "software": software_versions()}


def build_report(model_name: str, options: dict[str, Any], input_size: tuple[int, int],
                 measure: MeasureSpec | None, tables: Sequence[str] = ()) -> dict[str, Any]:
    """Everything the report shows, JSON-ready (``tables``: latency tables to price the genotype on, at their
    own setting, besides the shipped ones)."""
    model = create_model(model_name, **options)
    inference = profile_model(model, input_size, scope="inference")
    backbone = profile_model(model, input_size, scope="backbone")
    report: dict[str, Any] = {
        "model": model_name, "config": dict(getattr(model, "config", options)), "input_size": list(input_size),
        "num_features": getattr(model, "num_features", None),
        "params_m": inference.params_m, "params_total_m": count_params([model]) / 1e6,
        "flops_m": inference.flops_m, "backbone_flops_m": backbone.flops_m,
        "per_layer_flops_m": [{"layer": name, "flops_m": f} for name, f in inference.per_layer],
        "predicted": [asdict(p) for p in predict_all(model, input_size, tables)],
        "measured": measure_latency(model, input_size, measure) if measure is not None else None,
    }
    if model_name == "gdas":
        from hwnas.models.gdas import authors_param_count

        report["params_as_seed_counts_m"] = authors_param_count(model) / 1e6
    return report


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: summary, per-layer FLOPs, predictions, measurement."""
    h, w = report["input_size"]
    config = ", ".join(f"{k}={v}" for k, v in report["config"].items())
    md = [f"# Model report: {report['model']}", "", f"Config: {config}; input {h}x{w}.", "",
          "| quantity | value |", "|---|---|",
          f"| params (inference path) | {report['params_m']:.3f} M |",
          f"| params (whole model, training heads included) | {report['params_total_m']:.3f} M |",
          f"| FLOPs (inference, conv+linear MACs, batch 1) | {report['flops_m']:.1f} M |",
          f"| FLOPs (backbone only) | {report['backbone_flops_m']:.1f} M |",
          f"| inference feature | {report['num_features']}-d |"]
    if "params_as_seed_counts_m" in report:
        md.append(f"| params as the seed's Table 5 counts (with GDAS's unused conv1x1) | "
                  f"{report['params_as_seed_counts_m']:.3f} M |")
    total = report["flops_m"] or 1.0
    md += ["", "## Per-layer FLOPs", "", "| layer | MFLOPs | share |", "|---|---:|---:|"]
    md += [f"| {row['layer']} | {row['flops_m']:.2f} | {100 * row['flops_m'] / total:.1f}% |"
           for row in report["per_layer_flops_m"]]
    md += ["", "## Predicted latency (latency tables)", ""]
    if report["predicted"]:
        md += ["| table | device | provenance | batch | dtype | ms / batch | ms / image | note |",
               "|---|---|---|---:|---|---:|---:|---|"]
        for p in report["predicted"]:
            per_image = p["latency_ms"] / p["batch_size"] if p["latency_ms"] is not None else None
            md.append(f"| {p['table']} | {p['device'] or '-'} | {p['provenance'] or '-'} | {p['batch_size'] or '-'} | "
                      f"{p['dtype'] or '-'} | {_ms(p['latency_ms'])} | {_ms(per_image)} | {p['note']} |")
    else:
        md.append("No latency table is shipped (see `python -m hwnas.latency build`).")
    md += ["", "## Measured latency (this machine)", ""]
    m = report["measured"]
    if m is None:
        md.append("Not measured (--no-measure).")
    else:
        md.append(f"{m['median_ms']:.2f} ms per batch of {m['batch_size']} (IQR {m['iqr_ms']:.2f} ms; "
                  f"{m['per_image_ms']:.2f} ms / image), {m['dtype']}, median of {m['repeats']} after {m['warmup']} "
                  f"warm-up calls on {m['device']}, {m['threads']} threads, load average {m['load_average']}; "
                  + ", ".join(f"{k} {v}" for k, v in m["software"].items()) + ".")
    return "\n".join(md) + "\n"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``model_report.json`` and ``model_report.md`` in ``out_dir`` (atomic writes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = write_json_atomic(out_dir / "model_report.json", report)
    md_path = write_text_atomic(out_dir / "model_report.md", to_markdown(report))
    return json_path, md_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="cdnet", choices=list_models(), help="model to report")
    parser.add_argument("--genotype", help="preset (cdnet-top2), genotype string or JSON path (cnet/cdnet)")
    parser.add_argument("--width-mult", type=_cli.width_mult, help="width multiplier beta (default: the model's)")
    parser.add_argument("--neck", help="neck (bnneck/blneck/fblneck, or osnet for OSNet; default: the model's)")
    _cli.add_input_size(parser, (256, 128))
    parser.add_argument("--latency-table", action="append", default=[], type=_cli.table_ref, metavar="NAME|PATH",
                        help="also price the genotype on this latency table at the table's own setting, e.g. the "
                             "table it was searched with (repeatable; a name or a JSON path)")
    _cli.add_device(parser)
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32", help="measured latency dtype")
    parser.add_argument("--batch-size", type=_cli.positive_int, default=1, help="batch for the measured latency")
    parser.add_argument("--warmup", type=_cli.nonnegative_int, default=3, help="untimed calls before timing")
    parser.add_argument("--repeats", type=_cli.int_at_least(3), default=10, help="timed calls (median reported)")
    _cli.add_threads(parser, help="torch CPU threads for the measurement (default: torch's choice)")
    parser.add_argument("--no-measure", action="store_true", help="skip the measured latency")
    _cli.add_progress(parser)
    _cli.add_output(parser, "write model_report.md and model_report.json into this folder (default: print only)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


def run(args: argparse.Namespace) -> int:
    options = {k: v for k, v in (("genotype", args.genotype), ("width_mult", args.width_mult), ("neck", args.neck))
               if v is not None}
    check_input_size(args.model, args.input_size, **options)
    device = str(_cli.resolve_device(args.device))
    if args.output is not None:
        _cli.check_output_dir(args.output)
    measure = None if args.no_measure else MeasureSpec(device, args.dtype, args.batch_size, args.warmup,
                                                       args.repeats, args.threads, not args.no_progress)
    for name in args.latency_table:  # a missing or malformed table is an error here, not an 'n/a' row
        from hwnas.latency import load_table

        load_table(name)
    report = build_report(args.model, options, args.input_size, measure, args.latency_table)
    if args.output is not None:
        for path in write_report(report, args.output):
            logger.info("wrote %s", path)
    print(json.dumps(report, indent=2) if args.json else to_markdown(report))
    return 0
