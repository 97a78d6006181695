"""Targets, Markdown and the mAP-vs-latency plot of the search-quality benchmark."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.search.sweep import pareto_front


def seed_spread(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """|mAP(seed a) - mAP(seed b)| of the genotypes trained twice: their mean (the spread used by the targets)
    and max, in mAP units (fractions)."""
    diffs = [abs(r["mAP"] - r["second_seed"]["mAP"]) for r in _distinct(rows) if r["second_seed"]]
    if not diffs:
        return {"mean": float("nan"), "max": float("nan"), "pairs": 0}
    return {"mean": float(np.mean(diffs)), "max": float(max(diffs)), "pairs": len(diffs),
            "diffs": [float(d) for d in diffs]}


def _distinct(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({r["genotype"]: r for r in rows}.values())


def evaluate_targets(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Issue 11's targets on the measured rows.

    1. The weight-0 searched genotype's mAP is at or above the 75th percentile of the random genotypes' mAP.
    2. No random genotype is both faster (table latency) and more accurate than a searched one by more than the
       seed-to-seed spread (mean |mAP difference| of the genotypes trained with two seeds).
    And whether the proxy tells architectures apart: the interquartile range of the random mAPs against the spread.
    """
    random = [r for r in rows if r["kind"] == "random"]
    searched = [r for r in rows if r["kind"] == "searched"]
    spread = seed_spread(rows)
    maps = np.array([r["mAP"] for r in random])
    p75 = float(np.percentile(maps, 75))
    iqr = float(np.percentile(maps, 75) - np.percentile(maps, 25))
    weight0 = [{"search_seed": r.get("search_seed"), "genotype": r["genotype"], "mAP": r["mAP"],
                "percentile": float((maps <= r["mAP"]).mean() * 100), "met": bool(r["mAP"] >= p75)}
               for r in searched if r.get("latency_weight") == 0 or r["label"] == "searched w=0"]
    met = sum(w["met"] for w in weight0)
    t1 = None if not weight0 else met == len(weight0)  # with several search seeds: met by every one
    percentile = None if not weight0 else float(np.median([w["percentile"] for w in weight0]))
    dominated = []
    for s in searched:
        for r in random:
            if r["latency_ms"] < s["latency_ms"] and r["mAP"] > s["mAP"] + spread["mean"]:
                dominated.append({"searched": s["label"], "random": r["label"], "random_mAP": r["mAP"],
                                  "searched_mAP": s["mAP"], "random_latency_ms": r["latency_ms"],
                                  "searched_latency_ms": s["latency_ms"]})
    no_spread = math.isnan(spread["mean"])  # no genotype trained with both seeds yet: target 2 cannot be judged
    t2 = None if no_spread else not dominated
    tells_apart = None if no_spread else bool(iqr > spread["mean"])
    summary = [
        f"seed-to-seed spread of mAP: mean {_pct(spread['mean'])}, max {_pct(spread['max'])} ({spread['pairs']} pair{'' if spread['pairs'] == 1 else 's'}); "
        f"random genotypes' mAP: median {_pct(float(np.median(maps)))}, IQR {_pct(iqr)}, range "
        f"{_pct(float(maps.min()))}-{_pct(float(maps.max()))}: the proxy "
        + ("cannot be judged yet (no genotype trained with two seeds)" if tells_apart is None else
           "tells architectures apart beyond the spread" if tells_apart else
           "does NOT tell architectures apart beyond the spread (IQR <= spread)"),
        "target 1 (weight-0 genotype's mAP >= 75th percentile of random): " + _target1_text(weight0, p75),
        "target 2 (no random genotype faster and more accurate than a searched one by more than the spread): "
        + ("n/a (no seed-to-seed spread yet)" if t2 is None else "MET" if t2 else f"NOT MET: {len(dominated)} case(s)"),
    ]
    return {"spread": spread, "random_mAP_p75": p75, "random_mAP_iqr": iqr, "proxy_tells_apart": tells_apart,
            "target1_met": t1, "weight0_percentile": percentile, "weight0": weight0, "target2_met": t2, "dominated": dominated,
            "summary": summary}


def proxy_test_line(rows: Sequence[dict[str, Any]]) -> str | None:
    """With ``--test-set market``: the same trainings judged on the proxy's own test split (``proxy_test`` of each
    row), for comparison; None when the rows were scored on the proxy's test split."""
    if not rows or any("proxy_test" not in r for r in rows):
        return None
    own = [{**r, "mAP": r["proxy_test"]["mAP"],
            "second_seed": r["second_seed"] and {**r["second_seed"], "mAP": r["second_seed"]["proxy_test"]["mAP"]}}
           for r in rows]
    t = evaluate_targets(own)
    return ("the same trainings on the proxy's own test split (64 identities, 192 queries): " + t["summary"][0]
            + "; target 1 " + ("MET" if t["target1_met"] else "NOT MET" if t["target1_met"] is False else "n/a")
            + ", target 2 " + ("MET" if t["target2_met"] else "NOT MET" if t["target2_met"] is False else "n/a")
            + f" ({len(t['dominated'])} case(s))")


def _test_data_text(plan: dict[str, Any]) -> str:
    """What the rank-1/mAP of the trainings were measured on (``--test-set``)."""
    if plan.get("test_set", "proxy") == "market":
        return (f"stand-alone training uses a larger one of the same generator ({_data_line(plan['train_data'])}); "
                "rank-1/mAP are measured on a test split of Market-1501's size from the same generator and data seed "
                "(750 identities, 3,368 queries, 15,913 gallery images with distractors and junk boxes; the training "
                "images the same bytes; --test-set market), its identities in no training split")
    return (f"stand-alone training and the rank-1/mAP test use a larger one of the same generator "
            f"({_data_line(plan['train_data'])}; its query/gallery identities are not in any training split)")


def _target1_text(weight0: Sequence[dict[str, Any]], p75: float) -> str:
    """Target 1's verdict: one search, or each search seed's (met only if every seed meets it)."""
    if not weight0:
        return "n/a"
    if len(weight0) == 1:
        w = weight0[0]
        return (f"{'MET' if w['met'] else 'NOT MET'}: {_pct(w['mAP'])} vs {_pct(p75)} "
                f"(at the {ordinal(round(w['percentile']))} percentile of the random ones)")
    met = sum(w["met"] for w in weight0)
    each = "; ".join(f"seed {w['search_seed']} {_pct(w['mAP'])} ({ordinal(round(w['percentile']))} percentile"
                     f"{'' if w['met'] else ', below'})" for w in weight0)
    median = float(np.median([w["percentile"] for w in weight0]))
    return (f"{'MET' if met == len(weight0) else 'NOT MET'} (met by {met} of {len(weight0)} search seeds) vs "
            f"{_pct(p75)}: {each}; median {ordinal(round(median))} percentile")


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _num(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_OPTIONS = ("share_weights", "derive", "derive_samples")  # hwnas's options beyond the paper (docs/search.md)


def _search_options(s: dict[str, Any]) -> str:
    """The supernet's weight sharing and how the genotype was chosen (runs written before these options: the
    paper's)."""
    share, derive = s.get("share_weights", "none"), s.get("derive", "alpha")
    how = (f"the best by the supernet's score among the argmax-alpha genotype and {s.get('derive_samples', 200)} random "
           "ones" if derive == "score" else "argmax alpha")
    return f"share_weights {share}, derive {derive} ({how})"


def _schedule_name(s: dict[str, Any]) -> str:
    """How the searches' schedule relates to the main job's (``s``: the plan's search config as JSON)."""
    import json

    from hwnas.search.config import short_config, with_epochs

    s = json.loads(json.dumps(s))  # a fresh run's payload holds tuples, a report read back lists

    def same(config: Any) -> bool:
        d = json.loads(json.dumps(config.to_dict()))
        for key in _OPTIONS + ("seed", "latency_weight"):  # reported beside the schedule
            if key in s:
                d[key] = s[key]
        return d == s

    if same(short_config()):
        return "the main job's short schedule"
    if same(with_epochs(short_config(), s["epochs"])):
        return f"the main job's short schedule with {s['epochs']} epochs: --search-epochs {s['epochs']}"
    return "a reduced schedule"


def _data_line(d: dict[str, Any]) -> str:
    return (f"{d['num_ids']} train ids x {d['images_per_id']} images and as many test ids, {d['num_cameras']} cameras, "
            f"{d['image_size'][0]}x{d['image_size'][1]}, data seed {d['seed']}")


def _layout_note(rows: list[dict[str, Any]]) -> str:
    """Which trainings ran in NHWC memory layout (``--channels-last``: speed only, other rounding), if any."""
    nhwc = sum(1 for r in rows if r.get("channels_last"))
    return f"; {nhwc} of {len(rows)} rows finished in NHWC memory layout (--channels-last)" if nhwc else ""


def _device_note(rows: list[dict[str, Any]], device: str, torch_version: str | None = None) -> str:
    """Where the trainings finished, when not all on this run's machine and torch (a run resumed in another
    session): each machine, with its torch version where that differs from this run's."""
    counts: dict[str, int] = {}
    for r in rows:
        name = r.get("train_device") or "not recorded"
        if r.get("train_torch") not in (None, torch_version):
            name += f" with torch {r['train_torch']}"
        counts[name] = counts.get(name, 0) + 1
    if list(counts) == [device]:
        return ""
    return "; trainings finished on " + ", ".join(f"{name} ({n} row{'s' if n != 1 else ''})"
                                                   for name, n in counts.items())


def _table_machine(lat: dict[str, Any], device: str) -> str:
    """'this machine', or the CPU the table was built on when a resumed run continued elsewhere."""
    built = lat.get("device")
    return "this machine" if built in (None, device) else f"{built} (not this run's last machine)"


def _check_machine(check: dict[str, Any], device: str) -> str:
    timed = check.get("device")
    return "" if timed in (None, device) else f" (timed on {timed})"


def render_markdown(p: dict[str, Any]) -> str:
    env, plan, t, lat = p["environment"], p["plan"], p["targets"], p["latency_table"]
    s, rc = plan["search"], plan["recipe"]
    kt = p["kendall_tau"]
    lines = ["# Search quality on the synthetic proxy: searched vs random CDNet architectures", "",
             f"Command: `{env['command']}`", "",
             f"- machine: {env['device']}, torch threads {env['torch_threads']}"
             f"{'' if env.get('workers', 1) == 1 else ' in each of ' + str(env['workers']) + ' worker processes'}, software "
             f"{', '.join(f'{k} {v}' for k, v in env['software'].items())}",
             f"- load average (1/5/15 min) at start {env['load_at_start']}, at end {env.get('load_at_end')}; "
             f"{env.get('wall_s_this_session')} s wall in the last session; {env['date_utc']}",
             f"- proxy data (hwnas.data.synthetic): the search runs on the main job's dataset "
             f"({_data_line(plan['data'])}); {_test_data_text(plan)}",
             f"- search ({_schedule_name(s)}): {s['epochs']} epochs ({s['warmup_epochs']} weight warm-up), "
             f"batch {s['ids_per_batch']}x{s['images_per_id']}, input {s['image_size'][0]}x{s['image_size'][1]}, "
             f"width {s['width_mult']}, top-{s['topk']}, alpha lr {s['alpha_lr']}, search seed(s) "
             f"{', '.join(str(x) for x in plan.get('search_seeds', [s['seed']]))}, "
             f"{_search_options(s)}; latency "
             f"pressures {', '.join(f'{w:g}' for w in plan['latency_pressures'])} (the latency term's value at uniform alphas; weights per ms in the searches table)",
             f"- stand-alone recipe (one for all): {rc['epochs']} epochs, SGD lr {rc['lr']} ({rc['warmup_epochs']} "
             f"warm-up epochs, x0.1 at {rc['decay_at']:.0%}), batch {rc['batch_size']} = P x {rc['images_per_id']}, "
             f"{rc['image_size'][0]}x{rc['image_size'][1]}, width {rc['width_mult']}, {rc['neck']}, the paper's "
             f"augmentation and softmax + triplet; {plan['random_n']} random genotypes (torch.Generator seed "
             f"{plan['random_seed']}), seeds {plan['seeds'][0]} (all) and {plan['seeds'][1]} (three genotypes)"
             f"{_layout_note(p['rows'])}{_device_note(p['rows'], env['device'], env['software'].get('torch'))}",
             f"- latency: CPU table `{lat['path']}` measured on {_table_machine(lat, env['device'])} (batch "
             f"{lat['setting']['batch_size']}, "
             f"{lat['setting']['resolution'][0]}x{lat['setting']['resolution'][1]}, width "
             f"{lat['setting']['width_mult']}, 1 thread), same as `{lat['command']}`; end-to-end check of every "
             f"genotype{_check_machine(p['latency_check'], env['device'])}: MAPE {_pct(p['latency_check']['mape'])}, "
             f"Spearman {_num(p['latency_check']['spearman'])}",
             "", "## Targets", ""] + [f"- {line}" for line in t["summary"]] + [
             f"- {line}" for line in [proxy_test_line(p["rows"])] if line] + [
             f"- Kendall's tau (supernet score with the path fixed vs stand-alone mAP, {kt['genotypes']} genotypes): "
             f"validation accuracy {_num(kt['supernet_val_acc_vs_mAP']['tau'])} (p = "
             f"{_num(kt['supernet_val_acc_vs_mAP']['p_value'], '.3g')}), minus validation cross-entropy "
             f"{_num(kt['supernet_neg_val_ce_vs_mAP']['tau'])} (p = {_num(kt['supernet_neg_val_ce_vs_mAP']['p_value'], '.3g')})"]
    by_seed = kt.get("supernet_by_search_seed") or {}
    if len(by_seed) > 1:
        lines.append("- the same, for each search seed's weight-0 supernet (minus validation cross-entropy): " + ", ".join(
            f"seed {seed} {_num(t['neg_val_ce_tau'])} (p = {_num(t['neg_val_ce_p_value'], '.3g')})"
            for seed, t in by_seed.items()) + "; the table's supernet columns are the first seed's")
    if "depth_vs_mAP" in kt:  # runs written before it was reported lack it
        lines.append(f"- Kendall's tau (depth = number of CBlocks vs stand-alone mAP): "
                     f"{_num(kt['depth_vs_mAP']['tau'])} (p = {_num(kt['depth_vs_mAP']['p_value'], '.3g')})")
    if "train_acc_vs_mAP" in kt:
        lines.append(f"- Kendall's tau (training accuracy in the last epoch vs stand-alone mAP: high when the "
                     f"ranking is how far each network got in the recipe): {_num(kt['train_acc_vs_mAP']['tau'])} (p = "
                     f"{_num(kt['train_acc_vs_mAP']['p_value'], '.3g')})")
    lines.append("")
    if t["dominated"]:
        lines += ["Dominated searched points (random genotype faster and more accurate by more than the spread):", ""]
        lines += [f"- {d['searched']} ({_pct(d['searched_mAP'])}, {d['searched_latency_ms']:.2f} ms) by {d['random']} "
                  f"({_pct(d['random_mAP'])}, {d['random_latency_ms']:.2f} ms)" for d in t["dominated"]]
        lines.append("")
    lines += ["## Searches", "", "| search seed | latency pressure | latency weight (per ms) | genotype | "
              "mean entropy / ln n | wall (s) |", "|---|---|---|---|---|---|"]
    for srch in p["searches"]:
        lines.append(f"| {srch.get('search_seed', s['seed'])} | {srch.get('latency_pressure', 0):g} | "
                     f"{srch['latency_weight']:g} | `{srch['genotype']}` | {_num(srch['mean_entropy_fraction'])} | "
                     f"{_num(srch['wall_s'], '.0f')} |")
    lines += ["", "## Every architecture (sorted by mAP)", "",
              "| architecture | genotype | depth | latency (ms, table) | rank-1 | mAP | 2nd seed mAP | supernet val acc | "
              "supernet val CE | train acc (last epoch) | train (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(p["rows"], key=lambda r: -r["mAP"]):
        second = _pct(r["second_seed"]["mAP"]) if r["second_seed"] else ""
        name = f"**{r['label']}**" if r["kind"] != "random" else r["label"]
        lines.append(f"| {name} | `{r['genotype']}` | {r['depth']} | {r['latency_ms']:.2f} | {_pct(r['rank1'])} | "
                     f"{_pct(r['mAP'])} | {second} | {_pct(r['supernet_val_acc'])} | {r['supernet_val_ce']:.3f} | "
                     f"{_pct(r.get('train_acc'))} | {r['train_s']:.0f} |")
    lines += ["", "Plot: `search_quality.png` (mAP vs table latency; random genotypes and their Pareto front, presets, "
              "searched points)."]
    return "\n".join(lines) + "\n"


def plot_quality(p: dict[str, Any], path: Path) -> Path:
    """mAP (%) against table latency (ms): random points, their Pareto front, presets and searched points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = p["rows"]
    random = [r for r in rows if r["kind"] == "random"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.scatter([r["latency_ms"] for r in random], [100 * r["mAP"] for r in random], color="tab:gray", s=22,
               label=f"random ({len(random)})")
    flags = pareto_front([(r["latency_ms"], r["mAP"]) for r in random])
    front = sorted((r for r, f in zip(random, flags) if f), key=lambda r: r["latency_ms"])
    right = max(r["latency_ms"] for r in rows)  # the front's last step runs to the slowest point (one point: a line)
    ax.step([r["latency_ms"] for r in front] + [right], [100 * r["mAP"] for r in front] + [100 * front[-1]["mAP"]],
            where="post", color="tab:gray", linestyle="--", label="random Pareto front")
    notes: list[tuple[str, tuple[float, float]]] = []
    for kind, marker, color in (("preset", "s", "tab:blue"), ("searched", "*", "tab:red")):
        pts = [r for r in rows if r["kind"] == kind]
        ax.scatter([r["latency_ms"] for r in pts], [100 * r["mAP"] for r in pts], marker=marker, color=color,
                   s=140 if kind == "searched" else 45, label=kind, zorder=3, edgecolors="black", linewidths=0.5)
        labels: dict[str, list[str]] = {}  # one annotation per point: searches that found the same genotype
        for r in pts:
            labels.setdefault(r["genotype"], []).append(r["label"].replace("searched ", ""))
        notes.extend((_compact_label(labels[r["genotype"]]), (r["latency_ms"], 100 * r["mAP"]))
                     for r in {r["genotype"]: r for r in pts}.values())
    spread = p["targets"]["spread"]["mean"]
    for r in rows:
        if r["second_seed"]:
            ax.plot([r["latency_ms"]] * 2, [100 * r["mAP"], 100 * r["second_seed"]["mAP"]], color="black", lw=1)
    lat = p["latency_table"]["setting"]
    ax.set_xlabel(f"latency on the CPU table (ms per batch of {lat['batch_size']}, "
                  f"{lat['resolution'][0]}x{lat['resolution'][1]}, width {lat['width_mult']})")
    ax.set_ylabel("stand-alone mAP, Market-sized synthetic test set (%)" if p["plan"].get("test_set") == "market"
                  else "stand-alone mAP on the proxy (%)")
    ax.set_title(f"searched vs random (seed spread {100 * spread:.1f} mAP points; black bars: two seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    place_labels(ax, notes)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _compact_label(labels: list[str]) -> str:
    """``["w=0.3 s0", "w=0.3 s2", "w=0 s1"]`` -> ``"w=0.3 s0, s2; w=0 s1"``: one latency weight named once."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        head, _, seed = label.rpartition(" ")
        if head.startswith("w=") and seed.startswith("s"):
            groups.setdefault(head, []).append(seed)
        else:
            groups.setdefault(label, [])
    return "; ".join(f"{head} {', '.join(seeds)}" if seeds else head for head, seeds in groups.items())


# Offsets (points) tried in turn for a label, right of the point first, then left, then further up and down.
_LABEL_OFFSETS = [(dx, dy) for dy in (4, -12, 16, -24, 28, -36, 40, -48, 52, -60) for dx in (6, -6)]


def place_labels(ax: Any, notes: list[tuple[str, tuple[float, float]]]) -> list[Any]:
    """Annotate each ``(text, (x, y))`` at the first offset where its text overlaps no label placed before it (in
    order of x); a label moved away from its point gets a thin leader line. Returns the annotations."""
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    placed: list[Any] = []
    boxes: list[Any] = []
    for text, xy in sorted(notes, key=lambda n: n[1]):
        for i, (dx, dy) in enumerate(_LABEL_OFFSETS):
            note = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=8,
                               ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top")
            box = _text_box(note, renderer).expanded(1.05, 1.1)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if i == len(_LABEL_OFFSETS) - 1 or (fits and not any(box.overlaps(b) for b in boxes)):
                break
            note.remove()
        if abs(dy) > 4:
            note.remove()
            note = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=8,
                               ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
                               arrowprops={"arrowstyle": "-", "color": "0.4", "lw": 0.6, "shrinkA": 0, "shrinkB": 4})
        boxes.append(_text_box(note, renderer))
        placed.append(note)
    return placed


def _text_box(note: Any, renderer: Any) -> Any:
    """The window extent of an annotation's text alone (``Annotation.get_window_extent`` includes its leader line)."""
    from matplotlib.text import Text

    note.update_positions(renderer)  # the text's position is computed from its offset at draw time
    return Text.get_window_extent(note, renderer)

