"""ReID evaluation: ranking metrics (CMC / mAP / mINP), feature extraction and k-reciprocal re-ranking."""
from hwnas.evaluation.features import compute_distance, evaluate_model, extract_features
from hwnas.evaluation.rank import evaluate_rank
from hwnas.evaluation.rerank import re_ranking

__all__ = ["compute_distance", "evaluate_model", "evaluate_rank", "extract_features", "re_ranking"]
