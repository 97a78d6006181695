"""Search outputs: genotype.json, search_report.json / .md and a plot of alpha per layer over epochs.

The derived architecture is profiled as the network the search is for: width 1.0 at the latency table's
resolution (256 x 128 without a table), FLOPs of the backbone (DESIGN 4 counting), inference params.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from hwnas._io import write_json_atomic, write_text_atomic
from hwnas.search.config import SearchConfig
from hwnas.search.decisiveness import format_decisiveness
from hwnas.search.loop import SearchResult
from hwnas.space.genotype import Genotype

logger = logging.getLogger(__name__)

DEFAULT_DEPLOY_SIZE = (256, 128)


def deploy_setting(table: Any) -> tuple[tuple[int, int], float]:
    """(input size, width) the derived network is profiled at: the table's setting, else 256x128 at width 1."""
    if table is None:
        return DEFAULT_DEPLOY_SIZE, 1.0
    s = table.data.setting
    return (int(s.resolution[0]), int(s.resolution[1])), float(s.width_mult)


def describe_genotype(genotype: Genotype, table: Any, num_classes: int = 751) -> dict[str, Any]:
    """Params (M), backbone FLOPs (M) and table latency (ms) of one architecture."""
    size, width = deploy_setting(table)
    params_m, flops_m = _profile(genotype.tostr(), size, width, num_classes)
    return {"genotype": genotype.tostr(), "layers": [c.to_list(genotype.space) for c in genotype.layers],
            "depth": genotype.depth, "params_m": params_m, "flops_m": flops_m,
            "input_size": list(size), "width_mult": width,
            "predicted_latency_ms": None if table is None else round(table.genotype_latency_ms(genotype), 4)}


@lru_cache(maxsize=256)
def _profile(genotype: str, size: tuple[int, int], width: float, num_classes: int) -> tuple[float, float]:
    """(inference params M, backbone FLOPs M) of a genotype's network at ``size`` and ``width``, cached: profiling
    traces the whole network (about a second at 256x128), and a process profiles the same few genotypes again and
    again (the final and top-k genotypes of every search; a benchmark's or a sweep's searches)."""
    import hwnas
    from hwnas.profile import profile_model

    geno = Genotype.fromstr(genotype)
    model = hwnas.create_model(geno.space, genotype=geno, width_mult=width, num_classes=num_classes)
    prof = profile_model(model, input_size=size, scope="backbone")
    return round(prof.params_m, 4), round(prof.flops_m, 2)


def table_summary(table: Any) -> dict[str, Any] | None:
    if table is None:
        return None
    d, s = table.data, table.data.setting
    return {"name": d.name, "device": d.device.name, "provenance": d.provenance.kind,
            "runtime": getattr(d.provenance, "runtime", "eager"), "batch_size": s.batch_size,
            "dtype": s.dtype, "resolution": list(s.resolution), "width_mult": s.width_mult,
            "fixed_ms": table.fixed_ms}


def build_report(config: SearchConfig, result: SearchResult, table: Any, data_description: str,
                 wall_s: float) -> dict[str, Any]:
    """The JSON report: settings, per-epoch records, the derived genotype and the top-k genotypes."""
    final = describe_genotype(result.genotype, table)
    final["val_acc_eval_mode"] = result.val_acc_eval_mode
    final["val_acc_train_mode"] = result.val_acc_train_mode
    final["expected_latency_ms"] = result.expected_latency_ms
    final["decisiveness"] = result.decisiveness.to_dict()
    final["warning"] = result.decisiveness.warning()
    final["selection"] = result.selection
    top = []
    for geno, prob in result.topk:
        entry = describe_genotype(geno, table)
        entry["probability"] = prob
        top.append(entry)
    return {"config": config.to_dict(), "data": data_description, "latency_table": table_summary(table),
            "epochs": result.history, "final": final, "topk_genotypes": top, "wall_s": round(wall_s, 2),
            "step_time_s": round(sum(r["time_s"] for r in result.history), 2),
            "alphas": result.alphas.tolist()}


def summary_lines(result: SearchResult, table: Any = None) -> list[str]:
    """What the command line prints at the end of a search: the genotype (with its predicted latency), the
    per-layer decisiveness, the warning beside the genotype when the alphas did not move, both accuracies."""
    lat = "" if table is None else (f", predicted latency {table.genotype_latency_ms(result.genotype):.3f} ms "
                                    f"on {table.name}")
    lines = [f"derived genotype: {result.genotype.tostr()}{lat}"]
    sel = result.selection
    if sel is not None:
        best, alpha = sel["top"][0], sel["alpha_genotype"]
        lines.append(f"chosen by the supernet's score (search.derive=score): best of {sel['scored']} genotypes, val acc "
                     f"{best['val_acc']:.3f} (argmax alpha {alpha['genotype']}: {alpha['val_acc']:.3f})")
    warning = result.decisiveness.warning()
    if warning:  # with derive=score it concerns the argmax-alpha genotype, not the chosen one
        lines.append(warning if sel is None else f"(argmax alpha) {warning}")
    lines += format_decisiveness(result.decisiveness, warn=False)
    lines.append(f"supernet val acc (eval mode, one pass over the validation split): {result.val_acc_eval_mode:.3f}; "
                 f"val acc (train mode, mean over the last epoch's alpha steps): "
                 f"{_fmt(result.val_acc_train_mode, '.3f')}")
    return lines


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _table_line(t: dict[str, Any] | None) -> str:
    if t is None:
        return "none"
    return (f"{t['name']} ({t['device']}, {t['provenance']} on {t.get('runtime', 'eager')}, batch {t['batch_size']}, "
            f"{t['dtype']})")


def render_markdown(report: dict[str, Any]) -> str:
    c, f, t = report["config"], report["final"], report["latency_table"]
    lines = ["# Search report", "",
             f"- space: {c['space']}, top-{c['topk']}, {c['epochs']} epochs, batch {c['ids_per_batch']} x "
             f"{c['images_per_id']}, input {c['image_size'][0]}x{c['image_size'][1]}, width {c['width_mult']}",
             f"- data: {report['data']}",
             f"- latency table: {_table_line(t)}",
             f"- latency weight {c['latency_weight']}, target {_fmt(c['latency_target_ms'], '')} ms; "
             f"seed {c['seed']}; {report['step_time_s']:.1f} s in search steps (all sessions), "
             f"{report['wall_s']:.1f} s wall in the last session", "",
             "## Derived genotype (" + ("argmax alpha" if f.get("selection") is None else
                                         "best by the supernet's score, search.derive=score") + ")", "",
             f"`{f['genotype']}` — depth {f['depth']}, {f['params_m']:.3f} M params, {f['flops_m']:.1f} MFLOPs "
             f"(backbone, {f['input_size'][0]}x{f['input_size'][1]}, width {f['width_mult']}), predicted latency "
             f"{_fmt(f['predicted_latency_ms'], '.3f')} ms", ""]
    if f.get("selection") is not None:
        sel = f["selection"]
        bound = "" if sel["latency_bound_ms"] is None else (f", only genotypes predicted at most "
                                                             f"{sel['latency_bound_ms']:.3f} ms (the alpha genotype's)")
        lines += [f"Scored on the supernet (fixed path, BN re-estimated, validation split): the argmax-alpha genotype "
                  f"and {sel['samples']} random ones{bound}; {sel['scored']} scored. Argmax alpha: "
                  f"`{sel['alpha_genotype']['genotype']}`, val acc {sel['alpha_genotype']['val_acc']:.3f}.", "",
                  "| # | genotype | val acc | val CE |", "|---|---|---|---|"]
        lines += [f"| {i} | `{r['genotype']}` | {r['val_acc']:.3f} | {r['val_ce']:.3f} |"
                  for i, r in enumerate(sel["top"], start=1)]
        lines.append("")
    if f["warning"]:
        lines += [f"**{f['warning']}**", ""]
    lines += [f"- supernet val acc, eval mode (one pass over the validation split, no augmentation): "
              f"{f['val_acc_eval_mode']:.3f}",
              f"- val acc, train mode (mean over the last epoch's alpha-step batches): "
              f"{_fmt(f['val_acc_train_mode'], '.3f')}", ""]
    lines += _decisiveness_table(f["decisiveness"])
    lines += ["## Top-k genotypes (highest joint probability)", "",
              "| # | genotype | probability | params (M) | MFLOPs | predicted latency (ms) |",
              "|---|---|---|---|---|---|"]
    for i, g in enumerate(report["topk_genotypes"], start=1):
        lines.append(f"| {i} | `{g['genotype']}` | {g['probability']:.3e} | {g['params_m']:.3f} | {g['flops_m']:.1f} "
                     f"| {_fmt(g['predicted_latency_ms'], '.3f')} |")
    lines += ["", "## Per epoch", "",
              "Accuracies are identity top-1 in train mode, averaged over the epoch's batches.", "",
              "| epoch | lr | train loss | train acc | val loss | val acc (train mode) | alpha entropy / ln n | "
              "margin | E[lat] (ms) | genotype |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["epochs"]:
        lines.append(f"| {r['epoch']} | {r['lr']:.4g} | {r['train_loss']:.4f} | {r['train_acc']:.3f} | "
                     f"{_fmt(r['val_loss'], '.4f')} | {_fmt(r['val_acc_train_mode'], '.3f')} | {r['alpha_entropy_fraction']:.4f} | "
                     f"{r['alpha_margin']:.4f} | {_fmt(r['latency_ms'], '.3f')} | `{r['genotype']}` |")
    return "\n".join(lines) + "\n"


def _decisiveness_table(d: dict[str, Any]) -> list[str]:
    lines = ["### Decisiveness (final alphas)", "",
             "Entropy of softmax(alpha) as a fraction of ln n (1 = alphas never moved, 0 = decided); margin = "
             "p(chosen) - p(runner-up).", "",
             "| layer | chosen | p | runner-up | p | margin | entropy / ln n |", "|---|---|---|---|---|---|---|"]
    for x in d["layers"]:
        lines.append(f"| {x['layer']} | `{x['candidate']}` | {x['probability']:.4f} | `{x['runner_up']}` | "
                     f"{x['runner_up_probability']:.4f} | {x['margin']:.4f} | {x['entropy_fraction']:.4f} |")
    lines += [f"| mean | | | | | {d['mean_margin']:.4f} | {d['mean_entropy_fraction']:.4f} |", ""]
    return lines


def plot_alphas(history: list[dict[str, Any]], space: str, path: Path, chosen: list[int] | None = None) -> Path:
    """softmax(alpha) per layer against the epoch (drawn by :func:`hwnas.viz.alphas.plot_alphas`)."""
    from hwnas.viz.alphas import plot_alphas as draw

    return draw(history, space, path, chosen=chosen)


def write_outputs(output: Path, config: SearchConfig, result: SearchResult, table: Any, data_description: str,
                  wall_s: float) -> dict[str, Path]:
    """Write genotype.json, search_report.json/.md and alphas.png into ``output``; returns their paths."""
    output.mkdir(parents=True, exist_ok=True)
    report = build_report(config, result, table, data_description, wall_s)
    paths = {"genotype": result.genotype.save(output / "genotype.json"),
             "report_json": write_json_atomic(output / "search_report.json", report),
             "report_md": output / "search_report.md", "alphas_png": output / "alphas.png"}
    write_text_atomic(paths["report_md"], render_markdown(report))
    if report["final"]["warning"]:
        logger.warning("%s (genotype %s)", report["final"]["warning"], report["final"]["genotype"])
    if result.history:
        plot_alphas(result.history, config.space, paths["alphas_png"], chosen=result.genotype.indices())
    else:
        del paths["alphas_png"]
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths
