"""Draw the figures of a run folder again from the files the run wrote (``hwnas report plots RUN``).

- a ``hwnas train`` folder: ``training_curves.png`` from ``metrics.jsonl``
- a ``hwnas search`` folder: ``alphas.png`` from ``search_report.json`` (per-epoch alphas, derived genotype)
- a ``hwnas latency validate --output`` folder: ``validation.png`` from ``validation.json``
- ``hwnas evaluate`` results: ``<name>-cmc.png`` beside each ``eval*.json``
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hwnas._io import json_error_text, read_regular
from hwnas.errors import ConfigError, UsageError


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_regular(path).decode("utf-8"))
    except ValueError as e:  # not JSON, not UTF-8, an integer of too many digits
        raise ConfigError(f"not valid JSON ({json_error_text(e, column=False)}), {path}, expected the file hwnas wrote") from None
    if not isinstance(data, dict):
        raise ConfigError(f"not a JSON object, {path}, expected the file hwnas wrote")
    return data


def _search(run: Path) -> list[Path]:
    from hwnas.space.genotype import Genotype
    from hwnas.viz.alphas import FILENAME, plot_alphas

    report = _read_json(run / "search_report.json")
    try:
        history, space = report["epochs"], report["config"]["space"]
        chosen = Genotype.fromstr(report["final"]["genotype"]).indices()
    except (KeyError, TypeError) as e:
        raise ConfigError(f"missing field {e}, {run / 'search_report.json'}, expected a report of hwnas search") from None
    return [plot_alphas(history, space, run / FILENAME, chosen=chosen)] if history else []


def _validation(run: Path) -> list[Path]:
    from hwnas.viz.latency import FILENAME, plot_latency_validation

    return [plot_latency_validation(_read_json(run / "validation.json"), run / FILENAME)]


def _evaluations(run: Path) -> list[Path]:
    from hwnas.viz.cmc import plot_cmc

    paths = []
    for result_path in sorted(run.glob("eval*.json")):
        r = _read_json(result_path)
        cmc = r.get("cmc") or r.get("cmc_top20")
        if cmc:
            paths.append(plot_cmc(cmc, run / f"{result_path.stem}-cmc.png", label=evaluation_label(r),
                                  mAP=r.get("mAP"), mINP=r.get("mINP")))
    return paths


def evaluation_label(r: dict[str, Any]) -> str:
    """``<model> epoch E on <dataset> (<metric>[, flip][, re-ranked])`` from an evaluation result."""
    settings = ", ".join([str(r.get("metric", "euclidean"))] + (["flip"] if r.get("flip") else [])
                         + (["re-ranked"] if r.get("rerank") else []))
    return f"{r.get('model', 'model')} epoch {r.get('epoch', '?')} on {r.get('dataset', '?')} ({settings})"


def redraw(run_dir: str | os.PathLike) -> list[Path]:
    """Every figure the folder's files allow; returns the written paths (UsageError when there is none)."""
    from hwnas.viz.training import redraw_training_curves

    run = Path(run_dir)
    if not run.is_dir():
        raise UsageError(f"not a folder, {run}, expected the output folder of a hwnas run")
    paths: list[Path] = []
    if (run / "metrics.jsonl").is_file():
        paths.append(redraw_training_curves(run))
    if (run / "search_report.json").is_file():
        paths += _search(run)
    if (run / "validation.json").is_file():
        paths += _validation(run)
    paths += _evaluations(run)
    if not paths:
        raise UsageError(f"nothing to draw, {run}, expected a run folder with metrics.jsonl (train), "
                         "search_report.json (search), validation.json (latency validate) or eval*.json (evaluate)")
    return paths
