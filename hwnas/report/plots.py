"""Draw a run folder's figures again from its files (training curves, alphas, latency scatter, CMC curves).

``hwnas report plots RUN [RUN ...]``: ``training_curves.png`` from a train run's metrics.jsonl, ``alphas.png`` from
a search's search_report.json, ``validation.png`` from ``hwnas latency validate --output``'s validation.json and
``<name>-cmc.png`` beside each evaluation's eval*.json (see :mod:`hwnas.viz.redraw`).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hwnas._cli import path

    parser.add_argument("runs", type=path, nargs="+", metavar="RUN", help="output folder of a hwnas run")


def run(args: argparse.Namespace) -> int:
    from hwnas.viz.redraw import redraw

    for folder in args.runs:
        for path in redraw(folder):
            print(f"wrote {path}")
    return 0
