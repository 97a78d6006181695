"""The CNet/CDNet search space: candidate ops, building blocks and genotypes."""
from hwnas.space.blocks import Branch, CBlock, CDBlock, ChannelGate, DownSample, LiteConv, Stem, scaled_planes
from hwnas.space.candidates import CDNET_CANDIDATES, CNET_CANDIDATES, Candidate, candidates
from hwnas.space.genotype import Genotype, GenotypeError, from_dict, load_genotype
from hwnas.space.presets import PRESETS, list_presets, resolve_genotype

__all__ = [
    "Branch", "CBlock", "CDBlock", "CDNET_CANDIDATES", "CNET_CANDIDATES", "Candidate", "ChannelGate",
    "DownSample", "Genotype", "GenotypeError", "LiteConv", "PRESETS", "Stem", "candidates", "from_dict",
    "list_presets", "load_genotype", "resolve_genotype", "scaled_planes",
]
