"""The eight architectures of the seed's Table 1 (Top-k Sample Search with k = 1..4)."""
from __future__ import annotations

import os
from typing import Union

from hwnas.space.candidates import Candidate
from hwnas.space.genotype import Genotype, GenotypeError, load_genotype

_TABLE1: dict[str, tuple[tuple[int, ...], ...]] = {
    "cnet-top1": ((3, 5), (7, 9), (3, 7), (3, 9), (5, 9), (7, 9)),
    "cnet-top2": ((5, 7), (7, 9), (7, 9), (7, 9), (7, 9), (3, 5)),
    "cnet-top3": ((5, 7), (3, 9), (3, 5), (3, 5), (3, 5), (5, 7)),
    "cnet-top4": ((5, 7), (3, 5), (5, 7), (3, 7), (3, 9), (3, 7)),
    "cdnet-top1": ((3, 7, 2), (3, 9, 1), (5, 9, 2), (3, 7, 1), (3, 9, 2), (7, 9, 2)),
    "cdnet-top2": ((3, 5, 1), (3, 7, 2), (5, 7, 2), (5, 9, 1), (5, 7, 2), (5, 7, 1)),
    "cdnet-top3": ((5, 7, 2), (5, 7, 2), (3, 5, 2), (5, 7, 1), (7, 9, 2), (3, 7, 1)),
    "cdnet-top4": ((3, 9, 2), (5, 9, 1), (5, 7, 2), (3, 7, 1), (5, 7, 1), (5, 7, 1)),
}

PRESETS: dict[str, Genotype] = {
    name: Genotype(name.split("-")[0], tuple(Candidate(*c) for c in layers)) for name, layers in _TABLE1.items()
}
DEFAULT_PRESET = {"cnet": "cnet-top2", "cdnet": "cdnet-top2"}


def list_presets() -> list[str]:
    return list(PRESETS)


def resolve_genotype(genotype: Union[str, os.PathLike, Genotype, None], space: str) -> Genotype:
    """A preset name, a genotype string, a JSON path or a :class:`Genotype` -> a ``space`` genotype."""
    if genotype is None:
        genotype = DEFAULT_PRESET[space]
    if isinstance(genotype, Genotype):
        geno = genotype
    elif isinstance(genotype, str) and genotype in PRESETS:
        geno = PRESETS[genotype]
    elif isinstance(genotype, str) and genotype.split(":", 1)[0] in ("cnet", "cdnet") and ":" in genotype:
        geno = Genotype.fromstr(genotype)
    elif isinstance(genotype, (str, os.PathLike)) and os.path.exists(genotype):
        return load_genotype(genotype, space=space)
    else:
        raise GenotypeError(
            f"genotype {genotype!r} is neither a preset nor a genotype string nor an existing file, genotype, "
            f"expected a preset ({', '.join(PRESETS)}), a genotype string like 'cdnet:3-5-1,...' or a JSON file path"
        )
    if geno.space != space:
        raise GenotypeError(f"genotype {geno.tostr()!r} is a {geno.space} genotype, genotype, expected a {space} "
                            "genotype")
    return geno
