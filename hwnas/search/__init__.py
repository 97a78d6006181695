"""Top-k Sample Search (the seed's supplementary section 1) with a hardware-aware latency term.

``SuperNet`` (mixed ops over the CNet/CDNet candidates), ``topk_weights`` (straight-through top-k),
``Searcher`` (the alternating first-order loop with exact resume and DDP), ``derive_genotype`` /
``topk_genotypes``, ``SearchConfig``; ``python -m hwnas.search`` is the command line.
"""
from hwnas.search.config import SearchConfig, SyntheticData, paper_config, short_config, with_epochs
from hwnas.search.decisiveness import UNDECIDED_ENTROPY_FRACTION, Decisiveness, LayerDecision, decisiveness
from hwnas.search.derive import alpha_entropy, derive_genotype, topk_genotypes
from hwnas.search.loop import Searcher, SearchResult, latency_penalty
from hwnas.search.supernet import MixedLayer, SearchHead, SuperNet
from hwnas.search.topk import topk_select, topk_weights

__all__ = [
    "UNDECIDED_ENTROPY_FRACTION",
    "Decisiveness",
    "LayerDecision",
    "MixedLayer",
    "SearchConfig",
    "SearchHead",
    "SearchResult",
    "Searcher",
    "SuperNet",
    "SyntheticData",
    "alpha_entropy",
    "decisiveness",
    "derive_genotype",
    "latency_penalty",
    "paper_config",
    "short_config",
    "topk_genotypes",
    "topk_select",
    "topk_weights",
    "with_epochs",
]
