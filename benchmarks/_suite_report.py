"""Write ``manifest.json`` and ``summary.md`` of a ``benchmarks/gpu_suite.sh`` run (called by the script at its end).

Reads the staging folder named by ``SUITE_STAGE`` (``steps.tsv`` written by the runner, ``env/``, ``logs/``,
``results/``) and the run's facts from ``SUITE_*`` variables; standard library only, so it works even when the
setup step failed. The summary holds every step's status and time, the environment, and the Markdown
results the steps wrote (so the figures can be read without unpacking anything else); failed steps show the
end of their log.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

RESULT_ORDER = ("search_step.md", "inference.md", "cpp_inference.md", "latency/h100_vs_h200/table_comparison.md",
                "latency/h200_validate/validation.md", "inference_time_h200/results.md")
MAX_RESULT_LINES = 60


def read_steps(stage: Path) -> list[dict[str, Any]]:
    with open(stage / "steps.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    steps = []
    for r in rows:
        log = stage / "logs" / f"{r['name']}.log"
        steps.append({"name": r["name"], "budget_s": int(r["budget_s"]), "timeout_s": int(r["timeout_s"] or 0),
                      "status": r["status"], "exit_code": int(r["exit_code"]) if r["exit_code"] else None,
                      "seconds": float(r["seconds"] or 0), "command": r["command"],
                      "log": f"logs/{log.name}" if log.exists() else None})
    return steps


def _tail(path: Path, n: int) -> list[str]:
    try:
        return path.read_text(errors="replace").rstrip().splitlines()[-n:]
    except OSError:
        return []


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def manifest(stage: Path, steps: list[dict[str, Any]]) -> dict[str, Any]:
    env = os.environ
    files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return {
        "suite": "benchmarks/gpu_suite.sh", "command": env.get("SUITE_ARGV", ""),
        "start_utc": env.get("SUITE_START_UTC"), "end_utc": env.get("SUITE_END_UTC"),
        "elapsed_s": int(env.get("SUITE_ELAPSED", "0")), "deadline_s": int(env.get("SUITE_TOTAL", "0")),
        "load_average_start": env.get("SUITE_LOAD_START"), "load_average_end": env.get("SUITE_LOAD_END"),
        "versions": _json(stage / "env" / "versions.json"),
        "versions_text": (stage / "env" / "versions.txt").read_text(errors="replace")
        if (stage / "env" / "versions.txt").exists() else None,
        "steps": steps, "counts": {s: sum(1 for x in steps if x["status"] == s)
                                   for s in ("ok", "failed", "timeout", "skipped")},
        "files": files + ["manifest.json", "summary.md"],
    }


def summary(stage: Path, man: dict[str, Any]) -> str:
    v = man["versions"] or {}
    dev = v.get("device") or {}
    lines = ["# hwnas GPU suite", "",
             f"- command: `{man['command']}`; {man['start_utc']} .. {man['end_utc']} ({man['elapsed_s']} s of "
             f"{man['deadline_s']} s); load average {man['load_average_start']} -> {man['load_average_end']}",
             f"- device: {dev.get('name', 'no CUDA device')} (sm {dev.get('capability', '?')}, "
             f"{dev.get('sms', '?')} SMs, {dev.get('memory_gib', '?')} GiB); torch {v.get('torch', '?')} "
             f"(CUDA {v.get('torch_cuda', '?')}, cuDNN {v.get('cudnn', '?')}), triton {v.get('triton', '?')}, "
             f"python {v.get('python', '?')}",
             f"- steps: {', '.join(f'{n} {s}' for s, n in man['counts'].items() if n)}", "",
             "| step | status | exit | seconds | budget s | command |", "|---|---|---:|---:|---:|---|"]
    for s in man["steps"]:
        lines.append(f"| {s['name']} | {s['status']} | {'' if s['exit_code'] is None else s['exit_code']} | "
                     f"{s['seconds']:.1f} | {s['budget_s']} | `{s['command']}` |")
    for name in RESULT_ORDER:
        path = stage / "results" / name
        if path.exists():
            body = path.read_text(errors="replace").rstrip().splitlines()
            cut = body[:MAX_RESULT_LINES] + ([f"... ({len(body) - MAX_RESULT_LINES} more lines in results/{name})"]
                                             if len(body) > MAX_RESULT_LINES else [])
            lines += ["", f"## results/{name}", "", *cut]
    for s in man["steps"]:
        if s["status"] in ("failed", "timeout") and s["log"]:
            lines += ["", f"## {s['name']}: {s['status']} (end of {s['log']})", "", "```",
                      *_tail(stage / s["log"], 15), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    stage = Path(os.environ["SUITE_STAGE"])
    steps = read_steps(stage)
    man = manifest(stage, steps)
    (stage / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
    (stage / "summary.md").write_text(summary(stage, man))
    return 0


if __name__ == "__main__":
    sys.exit(main())
