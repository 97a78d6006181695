"""How well a predicted latency table matches a measured one of the same setting (entry by entry and end to end).

    python -m benchmarks.compare_tables --measured runs/h200.json --predicted h100 \\
        [--validation runs/h200_validate/validation.json] [--spec h100] [--output runs/h100_vs_h200]

Entry errors are ``predicted / measured - 1`` for every fixed part and every searchable-layer entry both tables
hold; MAPE is the mean of their absolute values, Spearman the rank correlation of the layer entries (what the
search's ranking of candidates depends on). The errors are also grouped by layer, by the deepest branch
(k2 // 2 LiteConvs) and by the repeat r, which shows which of the prediction's assumptions fails: a
group error that grows with r (twice the kernels) points at the launch overhead, one that grows with the
layer's spatial size at the memory efficiency. With ``--validation`` (the ``validation.json`` of
``python -m hwnas.latency validate --output DIR``, measured on the same device and setting) the predicted
table's sums are also compared with the end-to-end medians measured there; with ``--spec`` the roofline
model is fitted to the measured table (``hwnas.latency.predict.calibrate``) and the fitted efficiencies are
printed beside the ones the prediction used. Prints Markdown; ``--output DIR`` also writes
``table_comparison.md`` and ``table_comparison.json``.
"""
from __future__ import annotations

import json
import shlex
import statistics
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from benchmarks._device import markdown_table
from hwnas import _cli
from hwnas._io import write_json_atomic, write_text_atomic
from hwnas.errors import LatencyTableError
from hwnas.latency.expected import LatencyTable
from hwnas.latency.io import read_table
from hwnas.latency.schema import TableData
from hwnas.latency.validate import mape_spearman
from hwnas.space.genotype import Genotype


def _same_setting(measured: TableData, predicted: TableData) -> None:
    a, b = measured.setting, predicted.setting
    keys = ("batch_size", "dtype", "resolution", "width_mult", "neck")
    diff = [f"{k} {getattr(a, k)} vs {getattr(b, k)}" for k in keys if getattr(a, k) != getattr(b, k)]
    if diff:
        raise LatencyTableError(f"settings differ ({'; '.join(diff)}), tables '{measured.name}' and "
                                f"'{predicted.name}', expected the same batch, dtype, resolution, width and neck")


def entry_errors(measured: TableData, predicted: TableData) -> list[dict[str, Any]]:
    """One record per entry both tables hold: name, group keys, measured and predicted ms, relative error."""
    _same_setting(measured, predicted)
    rows = []
    pred_fixed = {e.part: e.latency_ms for e in predicted.fixed}
    for e in measured.fixed:
        if e.part in pred_fixed:
            rows.append({"entry": e.part, "kind": "fixed", "measured_ms": e.latency_ms,
                         "predicted_ms": pred_fixed[e.part]})
    pred_layers = {e.key: e.latency_ms for e in predicted.layers}
    for e in measured.layers:
        if e.key in pred_layers:
            c = e.key.candidate
            rows.append({"entry": f"layer{e.key.layer}:{c.k1}-{c.k2}-{c.r}", "kind": "layer", "layer": e.key.layer,
                         "depth": c.k2 // 2, "r": c.r, "measured_ms": e.latency_ms,
                         "predicted_ms": pred_layers[e.key]})
    if not rows:
        raise LatencyTableError(f"no common entries, tables '{measured.name}' and '{predicted.name}', expected "
                                "tables covering the same space")
    for r in rows:
        r["error"] = r["predicted_ms"] / r["measured_ms"] - 1.0 if r["measured_ms"] > 0 else float("nan")
    return rows


def _group(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        if key in r:
            groups[r[key]].append(r["error"])
    return [{key: k, "entries": len(v), "mape": statistics.fmean(abs(e) for e in v),
             "median_error": statistics.median(v)} for k, v in sorted(groups.items())]


def end_to_end(predicted: TableData, validation: dict[str, Any]) -> dict[str, Any]:
    """The predicted table's genotype sums against the end-to-end medians of a validate result."""
    table = LatencyTable(predicted)
    archs = []
    for a in validation["archs"]:
        ms = table.genotype_latency_ms(Genotype.fromstr(a["genotype"]))
        archs.append({"genotype": a["genotype"], "predicted_ms": ms, "measured_ms": a["measured_ms"],
                      "measured_table_ms": a["predicted_ms"], "error": ms / a["measured_ms"] - 1.0})
    mape, rho = mape_spearman([a["predicted_ms"] for a in archs], [a["measured_ms"] for a in archs])
    return {"archs": archs, "mape": mape, "spearman": rho, "measured_table_mape": validation.get("mape"),
            "measured_table": validation.get("table")}


def fitted_calibration(measured: TableData, predicted: TableData, spec_key: str) -> dict[str, Any]:
    """The roofline efficiencies and launch overhead the measured table implies on ``spec_key``'s sheet, beside
    the calibration the predicted table used: the parameters that moved most are the wrong assumptions."""
    from hwnas.latency.predict import calibrate, load_spec

    fit = calibrate(measured, load_spec(spec_key))
    used = dict(predicted.provenance.details.get("calibration", {}))
    fitted = {k: v for k, v in asdict(fit.calibration).items() if k != "source"}
    return {"spec": spec_key, "fit_entries": fit.entries, "fit_mape": fit.mape, "fitted": fitted,
            "predicted_with": {k: used.get(k) for k in fitted}}


def compare(measured: TableData, predicted: TableData, validation: dict[str, Any] | None = None,
            spec: str | None = None) -> dict[str, Any]:
    rows = entry_errors(measured, predicted)
    layers = [r for r in rows if r["kind"] == "layer"]
    _, rho = mape_spearman([r["predicted_ms"] for r in layers], [r["measured_ms"] for r in layers]) \
        if len(layers) > 1 else (float("nan"), float("nan"))
    result = {
        "measured": {"name": measured.name, "device": measured.device.name, "provenance": measured.provenance.kind,
                     "date": measured.provenance.date},
        "predicted": {"name": predicted.name, "device": predicted.device.name, "provenance": predicted.provenance.kind,
                      "details": dict(predicted.provenance.details)},
        "setting": {"batch_size": measured.setting.batch_size, "dtype": measured.setting.dtype,
                    "resolution": list(measured.setting.resolution), "width_mult": measured.setting.width_mult,
                    "neck": measured.setting.neck},
        "entries": len(rows), "mape": statistics.fmean(abs(r["error"]) for r in rows),
        "median_error": statistics.median(r["error"] for r in rows), "layer_spearman": rho,
        "by_layer": _group(layers, "layer"), "by_depth": _group(layers, "depth"), "by_repeat": _group(layers, "r"),
        "fixed": [r for r in rows if r["kind"] == "fixed"], "rows": rows,
    }
    if validation is not None:
        result["end_to_end"] = end_to_end(predicted, validation)
    if spec is not None:
        result["calibration"] = fitted_calibration(measured, predicted, spec)
    return result


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def to_markdown(res: dict[str, Any], command: str) -> str:
    m, p, s = res["measured"], res["predicted"], res["setting"]
    lines = [f"# Predicted `{p['name']}` against measured `{m['name']}`", "", f"Command: `{command}`", "",
             f"- measured: {m['device']} ({m['provenance']} {m['date']}); predicted: {p['device']} ({p['provenance']}, "
             f"{p['details'].get('model', '?')}, spec {p['details'].get('spec', '?')})",
             f"- setting: batch {s['batch_size']}, {s['dtype']}, {s['resolution'][0]}x{s['resolution'][1]}, "
             f"width {s['width_mult']}, neck {s['neck']}",
             f"- {res['entries']} entries: MAPE **{res['mape'] * 100:.1f}%**, median error {_pct(res['median_error'])} "
             f"(error = predicted / measured - 1), Spearman of the layer entries {res['layer_spearman']:.4f}", ""]
    if "end_to_end" in res:
        e = res["end_to_end"]
        lines += [f"- end to end over {len(e['archs'])} validated genotypes: MAPE **{e['mape'] * 100:.1f}%**, "
                  f"Spearman {e['spearman']:.4f} (the measured table's own MAPE there: "
                  f"{(e['measured_table_mape'] or float('nan')) * 100:.1f}%)", ""]
    lines += ["## Fixed parts", "", markdown_table(["part", "measured ms", "predicted ms", "error"], [
        [r["entry"], f"{r['measured_ms']:.3f}", f"{r['predicted_ms']:.3f}", _pct(r["error"])] for r in res["fixed"]])]
    for key, title in (("layer", "searchable layer"), ("depth", "deepest branch (LiteConvs)"), ("r", "repeat r")):
        group = res[{"layer": "by_layer", "depth": "by_depth", "r": "by_repeat"}[key]]
        lines += ["", f"## By {title}", "", markdown_table([key, "entries", "MAPE", "median error"], [
            [str(g[key]), str(g["entries"]), f"{g['mape'] * 100:.1f}%", _pct(g["median_error"])] for g in group])]
    if "calibration" in res:
        c = res["calibration"]
        lines += ["", f"## Roofline parameters: predicted with, and fitted to the measured table (spec `{c['spec']}`)",
                  "", f"Fit over {c['fit_entries']} entries: MAPE {c['fit_mape'] * 100:.1f}% after fitting. "
                  "Efficiencies are fractions of the spec sheet's peaks; launch_us is the per-kernel overhead.", "",
                  markdown_table(["parameter", "predicted with", "fitted", "fitted / used"], [
                      [k, _num(c["predicted_with"][k]), _num(v), _ratio(v, c["predicted_with"][k])]
                      for k, v in c["fitted"].items()])]
    return "\n".join(lines) + "\n"


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "n/a"


def _read_validation(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        [(a["genotype"], float(a["measured_ms"])) for a in data["archs"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LatencyTableError(f"unreadable validation result ({e}), {path}, expected the JSON written by "
                                "'python -m hwnas.latency validate --output DIR' (validation.json)") from None
    return data


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = "python -m benchmarks.compare_tables") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--measured", required=True, metavar="NAME|PATH", help="measured table")
    p.add_argument("--predicted", required=True, metavar="NAME|PATH", help="predicted table")
    p.add_argument("--validation", type=_cli.path, help="validation.json of the measured table (end-to-end check)")
    p.add_argument("--spec", help="also fit the roofline to the measured table on this spec sheet (e.g. h100)")
    _cli.add_output(p, "folder for table_comparison.md and table_comparison.json (default: print only)")
    args = p.parse_args(argv)
    if args.output is not None:
        _cli.check_output_dir(args.output)
    validation = _read_validation(args.validation) if args.validation else None
    res = compare(read_table(args.measured), read_table(args.predicted), validation, args.spec)
    command = f"{prog} {shlex.join(argv)}"
    text = to_markdown(res, command)
    if args.output is not None:  # before printing: a closed stdout must not lose the files
        write_text_atomic(args.output / "table_comparison.md", text)
        write_json_atomic(args.output / "table_comparison.json", dict(res, command=command))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
