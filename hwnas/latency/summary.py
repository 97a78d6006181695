"""Human- and machine-readable summaries of tables and validation results (used by the CLI)."""
from __future__ import annotations

from typing import Any

from hwnas.latency.expected import LatencyTable
from hwnas.latency.schema import composition_dict
from hwnas.latency.validate import ValidationResult
from hwnas.space.presets import PRESETS


def table_summary(table: LatencyTable) -> dict[str, Any]:
    """Device, provenance, setting, fixed parts, and per space the fastest/slowest genotype and the presets."""
    d, s = table.data, table.data.setting
    spaces = {}
    for space in table.spaces:
        m = table.matrix(space)
        spaces[space] = {
            "min_ms": table.fixed_ms + float(m.min(dim=1).values.sum()),
            "max_ms": table.fixed_ms + float(m.max(dim=1).values.sum()),
            "layer_min_ms": [round(float(v), 4) for v in m.min(dim=1).values],
            "layer_max_ms": [round(float(v), 4) for v in m.max(dim=1).values],
            "presets_ms": {n: round(table.genotype_latency_ms(g), 4) for n, g in PRESETS.items() if g.space == space},
        }
    return {
        "name": d.name,
        "device": {"name": d.device.name, "kind": d.device.kind, "spec": d.device.spec},
        "provenance": {"kind": d.provenance.kind, "date": d.provenance.date, "runtime": d.provenance.runtime,
                       "software": dict(d.provenance.software), "details": dict(d.provenance.details)},
        "runtime": d.provenance.runtime, "composition": composition_dict(d.composition),
        "batch_size": s.batch_size, "dtype": s.dtype, "resolution": list(s.resolution), "width_mult": s.width_mult,
        "neck": s.neck, "threads": s.threads, "spaces": list(table.spaces),
        "fixed_ms": {e.part: e.latency_ms for e in d.fixed}, "fixed_total_ms": table.fixed_ms,
        "entries": len(d.layers), "per_space": spaces,
    }


def format_table_summary(info: dict[str, Any]) -> str:
    c = info["composition"]
    lines = [
        f"table       {info['name']}",
        (f"device      {info['device']['name']} ({info['device']['kind']}"
         + (f", spec {info['device']['spec']})" if info['device']['spec'] else ")")),
        (f"provenance  {info['provenance']['kind']} on {info['provenance']['date']}, runtime {info['runtime']} "
         f"(torch {info['provenance']['software'].get('torch', '?')})"),
        (f"setting     batch {info['batch_size']}, {info['dtype']}, {info['resolution'][0]}x{info['resolution'][1]}, "
         f"width {info['width_mult']}, neck {info['neck']}"
         + (f", {info['threads']} thread(s)" if info['threads'] else "")),
        f"fixed       {info['fixed_total_ms']:.3f} ms" + (" = " if c["method"] == "none" else " composed from ")
        + " + ".join(f"{k} {v:.3f}" for k, v in info["fixed_ms"].items()),
    ]
    if c["method"] != "none":
        lines.append(f"composition {c['method']}: {c['scale']:.4f} x raw sum {c['offset_ms']:+.3f} ms, fitted on "
                     f"{len(c['calibration'])} genotypes timed end to end (fit MAPE {c['fit_mape'] * 100:.2f}%)")
    for space, sp in info["per_space"].items():
        lines.append(f"{space:<11} genotypes {sp['min_ms']:.3f} .. {sp['max_ms']:.3f} ms; presets: "
                     + ", ".join(f"{n} {v:.3f}" for n, v in sp["presets_ms"].items()))
    return "\n".join(lines)


def validation_markdown(result: ValidationResult, command: str) -> str:
    """A results page: headline figures, the setting and load, and one row per architecture."""
    c = result.context
    lines = [
        f"# Latency table validation: `{result.table}` on {result.device}", "",
        f"Command: `{command}`", "",
        f"- MAPE of table sums vs end-to-end medians: **{result.mape * 100:.2f}%**",
        f"- Spearman rank correlation: **{result.spearman:.4f}**",
        (f"- {len(result.archs)} random {result.space} genotypes (seed {c['seed']}); batch {c['batch_size']}, "
         f"{c['dtype']}, {c['resolution'][0]}x{c['resolution'][1]}, width {c['width_mult']}, neck {c['neck']}, "
         f"threads {c['threads']}, timer {c.get('timer')}, {c['repeats']} interleaved rounds after "
         f"{c['warmup']} warm-up calls"),
        (f"- runtime {c.get('runtime', 'eager')}, heap {_heap(c.get('heap'))}; composition "
         + _composition_line(c.get("composition"))),
        (f"- table: {c['table_provenance']} on {c['table_device']}; software: "
         + ", ".join(f"{k} {v}" for k, v in c["software"].items())),
        f"- machine load (1/5/15 min) before: {c['load_before']}, after: {c['load_after']}", "",
        "| genotype | table ms | raw sum ms | measured ms (median) | IQR ms | error |", "|---|---:|---:|---:|---:|---:|",
    ]
    for a in result.archs:
        raw = "-" if a.raw_sum_ms is None else f"{a.raw_sum_ms:.3f}"
        lines.append(f"| `{a.genotype}` | {a.predicted_ms:.3f} | {raw} | {a.measured_ms:.3f} | {a.iqr_ms:.3f} | "
                     f"{a.error * 100:+.1f}% |")
    return "\n".join(lines) + "\n"


def _heap(heap: Any) -> str:
    if isinstance(heap, dict) and heap.get("allocator") == "glibc":
        return f"steady (glibc mmap threshold {heap['mmap_threshold'] >> 20} MiB, trim threshold {heap['trim_threshold'] >> 20} MiB)"
    return str(heap)


def _composition_line(comp: dict[str, Any] | None) -> str:
    if not comp or comp.get("method", "none") == "none":
        return "none (plain sums of the entries)"
    return (f"{comp['method']} ({comp['scale']:.4f} x raw sum {comp['offset_ms']:+.3f} ms, fitted on "
            f"{comp['calibration_genotypes']} other genotypes timed end to end when the table was built)")
