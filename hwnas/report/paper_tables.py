"""The seed's published Params/FLOPs figures, kept as printed (strings keep the printed precision)."""
from __future__ import annotations

from dataclasses import dataclass

# (beta, gamma) -> (Params M, FLOPs M) of the seed's Table 3; gamma 1.0/0.75/0.5/0.25 = 256x128/192x96/128x64/64x32
TABLE3_CDNET: dict[tuple[float, float], tuple[str, str]] = {
    (1.0, 1.0): ("1.8", "948.8"), (1.0, 0.75): ("1.8", "533.7"), (1.0, 0.5): ("1.8", "237.3"), (1.0, 0.25): ("1.8", "59.4"),
    (0.75, 1.0): ("1.0", "552.3"), (0.75, 0.75): ("1.0", "310.7"), (0.75, 0.5): ("1.0", "138.1"),
    (0.75, 0.25): ("1.0", "34.6"),
    (0.5, 1.0): ("0.5", "262.0"), (0.5, 0.75): ("0.5", "147.4"), (0.5, 0.5): ("0.5", "65.5"), (0.5, 0.25): ("0.5", "16.4"),
    (0.25, 1.0): ("0.1", "77.9"), (0.25, 0.75): ("0.1", "43.8"), (0.25, 0.5): ("0.1", "19.5"),
    (0.25, 0.25): ("0.1", "4.88"),
}
TABLE3_OSNET: dict[tuple[float, float], tuple[str, str]] = {
    (1.0, 1.0): ("2.2", "978.9"), (1.0, 0.75): ("2.2", "550.7"), (1.0, 0.5): ("2.2", "244.9"), (1.0, 0.25): ("2.2", "61.5"),
    (0.75, 1.0): ("1.3", "571.8"), (0.75, 0.75): ("1.3", "321.7"), (0.75, 0.5): ("1.3", "143.1"),
    (0.75, 0.25): ("1.3", "35.9"),
    (0.5, 1.0): ("0.6", "272.9"), (0.5, 0.75): ("0.6", "153.6"), (0.5, 0.5): ("0.6", "68.3"), (0.5, 0.25): ("0.6", "17.2"),
    (0.25, 1.0): ("0.2", "82.3"), (0.25, 0.75): ("0.2", "46.3"), (0.25, 0.5): ("0.2", "20.6"), (0.25, 0.25): ("0.2", "5.2"),
}
RESOLUTIONS: dict[float, tuple[int, int]] = {1.0: (256, 128), 0.75: (192, 96), 0.5: (128, 64), 0.25: (64, 32)}


@dataclass(frozen=True)
class PaperRow:
    """One published figure pair and how we count it to compare like with like."""

    model: str
    options: tuple[tuple[str, object], ...]
    input_size: tuple[int, int]
    scope: str
    params_scope: str  # inference | total | authors (GDAS: see hwnas.models.gdas.authors_param_count)
    paper_params_m: str
    paper_flops_m: str
    note: str = ""
    # where the paper prints a figure that its own other table contradicts, the figure we check against
    check_flops_m: str | None = None


def table3_rows() -> list[PaperRow]:
    """CDNet (top-2) FLOPs are the backbone alone; OSNet's include its head (conv5 and fc)."""
    rows = []
    for model, table, scope in (("cdnet", TABLE3_CDNET, "backbone"), ("osnet", TABLE3_OSNET, "inference")):
        for (beta, gamma), (params, flops) in table.items():
            opts: tuple[tuple[str, object], ...] = (("width_mult", beta),)
            if model == "cdnet":
                opts = (("genotype", "cdnet-top2"),) + opts
            rows.append(PaperRow(model, opts, RESOLUTIONS[gamma], scope, "inference", params, flops))
    return rows


def table5_rows(available_models: list[str]) -> list[PaperRow]:
    """Table 5 (256x128): inference FLOPs; BoT's 25.1M counts its 751-class classifier (params of the whole model)."""
    rows = [
        PaperRow("resnet50_bot", (), (256, 128), "inference", "total", "25.1", "4053.3",
                 "params include the 751-class classifier"),
        PaperRow("osnet", (("width_mult", 1.0),), (256, 128), "inference", "inference", "2.2", "979.0",
                 "Table 5 prints 979.0; its own Table 3 prints 978.9, which we match", check_flops_m="978.9"),
        PaperRow("gdas", (), (256, 128), "inference", "authors", "4.0", "1109.2",
                 "authors' count: inference path 2.98M + a 1x1 conv+BN head (1.05M) their FBLNeck never runs"),
        PaperRow("cdnet", (("genotype", "cdnet-top2"), ("width_mult", 1.0)), (256, 128), "inference", "inference",
                 "1.8", "955.1", "backbone + FBLNeck inference path"),
    ]
    return [r for r in rows if r.model in available_models]
