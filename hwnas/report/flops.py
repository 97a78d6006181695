"""FLOPs/params of any model, or the seed's Table 3 / Table 5 with our figures beside the paper's."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from hwnas import _cli
from hwnas.errors import UsageError
from hwnas.models import check_input_size, create_model, list_models, model_options
from hwnas.profile import PARAM_SCOPES, SCOPES, profile_model
from hwnas.report.paper_tables import PaperRow, table3_rows, table5_rows


def parse_size(text: str) -> tuple[int, int]:
    """``'256x128'`` -> (256, 128) (see :func:`hwnas._cli.input_size`)."""
    return _cli.input_size(text)


def measure_row(model_name: str, options: dict[str, Any], input_size: tuple[int, int], scope: str,
                params_scope: str = "inference") -> dict[str, Any]:
    """One JSON-ready row: model, genotype, width_mult, input_size, scope, params_m, flops_m."""
    model = create_model(model_name, **options)
    prof = profile_model(model, input_size, scope=scope, params_scope=params_scope)
    return {
        "model": model_name,
        "genotype": getattr(model, "config", {}).get("genotype"),
        "width_mult": options.get("width_mult", model_options(model_name).get("width_mult")),
        "input_size": list(input_size),
        "scope": scope,
        "params_scope": params_scope,
        "params_m": round(prof.params_m, 6),
        "flops_m": round(prof.flops_m, 6),
    }


def _printed_decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def matches(ours: float, printed: str) -> bool:
    """Our figure rounded to the paper's printed precision equals the printed figure."""
    return f"{ours:.{_printed_decimals(printed)}f}" == printed


def table_row(row: PaperRow) -> dict[str, Any]:
    if row.params_scope == "authors":
        from hwnas.models.gdas import authors_param_count

        result = measure_row(row.model, dict(row.options), row.input_size, row.scope)
        result.update(params_scope="authors", params_m=authors_param_count(create_model(row.model)) / 1e6)
    else:
        result = measure_row(row.model, dict(row.options), row.input_size, row.scope, row.params_scope)
    result.update(
        paper_params_m=float(row.paper_params_m), paper_flops_m=float(row.paper_flops_m),
        paper_printed=[row.paper_params_m, row.paper_flops_m],
        params_match=matches(result["params_m"], row.paper_params_m),
        flops_match=matches(result["flops_m"], row.check_flops_m or row.paper_flops_m),
        note=row.note,
    )
    return result


_HEAD = ["model", "genotype", "width", "input", "scope", "params_m", "flops_m"]
_PAPER_HEAD = _HEAD[:5] + ["params_m", "paper", "diff", "flops_m", "paper", "diff", "match"]
# widths of the width/input/scope and numeric columns when rows are printed as they are measured
_STREAM_WIDTHS = [5, 7, 17, 8, 5, 7, 8, 6, 8, 5]


def row_cells(r: dict[str, Any], paper: bool) -> list[str]:
    """The text cells of one row (``paper``: with the paper's figures, differences and the match column)."""
    cells = [r["model"], r["genotype"] or "-", f"{r['width_mult']}" if r["width_mult"] is not None else "-",
             "x".join(map(str, r["input_size"])),
             r["scope"] + {"total": "+cls", "authors": "+authors"}.get(r["params_scope"], "")]
    if paper:
        printed = r["paper_printed"]
        cells += [f"{r['params_m']:.3f}", printed[0], f"{r['params_m'] - r['paper_params_m']:+.3f}",
                  f"{r['flops_m']:.2f}", printed[1], f"{r['flops_m'] - r['paper_flops_m']:+.2f}",
                  "yes" if r["params_match"] and r["flops_match"] else "NO"]
    else:
        cells += [f"{r['params_m']:.3f}", f"{r['flops_m']:.2f}"]
    return cells


def format_line(cells: list[str], widths: list[int]) -> str:
    """Text columns left-aligned, numeric ones (from the 6th) right-aligned."""
    return "  ".join(str(c).rjust(w) if i >= 5 else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def format_rows(rows: list[dict[str, Any]]) -> str:
    """Aligned text table; paper columns and differences appear when the rows carry them."""
    paper = any("paper_flops_m" in r for r in rows)
    head = _PAPER_HEAD if paper else _HEAD
    lines = [row_cells(r, paper) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    out = [format_line(head, widths), format_line(["-" * w for w in widths], widths)]
    out += [format_line(c, widths) for c in lines]
    out += [f"note: {r['model']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(out)


def stream_table(paper_rows: list[PaperRow], write: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Measure ``paper_rows`` one by one, writing the header first and each row as soon as it is measured
    (a table takes minutes: fvcore traces every network); returns the rows."""
    from hwnas.space.presets import resolve_genotype

    def genotype_text(row: PaperRow) -> str:
        options = dict(row.options)
        return resolve_genotype(options["genotype"], row.model).tostr() if "genotype" in options else "-"

    text = [max(len(r.model) for r in paper_rows), max(len(genotype_text(r)) for r in paper_rows)]
    widths = [max(w, len(h)) for w, h in zip(text + _STREAM_WIDTHS, _PAPER_HEAD)]
    write(format_line(_PAPER_HEAD, widths))
    write(format_line(["-" * w for w in widths], widths))
    rows = []
    for paper in paper_rows:
        rows.append(table_row(paper))
        write(format_line(row_cells(rows[-1], True), widths))
    for r in rows:
        if r.get("note"):
            write(f"note: {r['model']}: {r['note']}")
    return rows


class _NoteGiven(argparse._StoreAction):
    """``store``, and the flag noted in ``namespace.given_flags``: ``--table`` measures the seed's fixed models,
    widths, sizes and scopes, so a model option given with it would be silently ignored (it is refused)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        super().__call__(parser, namespace, values, option_string)
        given = list(getattr(namespace, "given_flags", None) or [])
        if option_string not in given:
            given.append(option_string)
        namespace.given_flags = given


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="cdnet", choices=list_models(), action=_NoteGiven, help="model to count")
    parser.add_argument("--genotype", action=_NoteGiven,
                        help="preset (cdnet-top2), genotype string or JSON path (cnet/cdnet)")
    parser.add_argument("--width-mult", type=_cli.width_mult, action=_NoteGiven,
                        help="width multiplier beta (default: the model's)")
    _cli.add_input_size(parser, (256, 128), action=_NoteGiven)
    parser.add_argument("--scope", choices=SCOPES, default="inference", action=_NoteGiven,
                        help="backbone: stem to last layer; inference: what eval mode runs")
    parser.add_argument("--params-scope", choices=PARAM_SCOPES, default="inference", action=_NoteGiven,
                        help="which parameters to count: the inference path, or the whole model")
    parser.add_argument("--table", choices=["3", "5"],
                        help="reproduce the seed's Table 3 or Table 5 (its own models, widths, sizes and scopes: "
                             "not with --model, --genotype, --width-mult, --input-size, --scope, --params-scope)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a table")


def run(args: argparse.Namespace) -> int:
    given = getattr(args, "given_flags", None) or []
    if args.table and given:
        raise UsageError(f"{', '.join(given)} given with --table {args.table} (the table measures the seed's own "
                         "models, widths, input sizes and scopes), hwnas report flops, expected --table alone (with "
                         "--json if wanted) or the model options without --table")
    if args.table:
        paper = table3_rows() if args.table == "3" else table5_rows(list_models())
        if not args.json:
            print(f"seed Table {args.table}: {len(paper)} rows, each printed as it is measured", flush=True)
            rows = stream_table(paper, lambda line: print(line, flush=True))
            ok = sum(r["params_match"] and r["flops_match"] for r in rows)
            print(f"\n{ok}/{len(rows)} rows match the paper to the printed digit "
                  "(FLOPs: conv+linear multiply-accumulates, eval, batch 1; params: inference path)")
            return 0 if ok == len(rows) else 1
        from tqdm import tqdm

        rows = [table_row(r) for r in tqdm(paper, desc=f"Table {args.table}", unit="row", file=sys.stderr)]
    else:
        options: dict[str, Any] = {}
        if args.genotype is not None:
            options["genotype"] = args.genotype
        if args.width_mult is not None:
            options["width_mult"] = args.width_mult
        check_input_size(args.model, args.input_size, **options)
        rows = [measure_row(args.model, options, args.input_size, args.scope, args.params_scope)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_rows(rows))
    return 0 if all(r.get("params_match", True) and r.get("flops_match", True) for r in rows) else 1
