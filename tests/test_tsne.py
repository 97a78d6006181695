"""t-SNE of the report (scikit-learn's): separates identities, is seeded, refuses what it cannot embed."""
from __future__ import annotations

import numpy as np
import pytest

from hwnas.report.tsne import tsne


def test_tsne_keeps_clusters_apart_and_is_seeded():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 80)), rng.normal(5, 1, (30, 80))])  # > 50 dims: PCA first
    y = tsne(x, perplexity=10, seed=3)
    assert y.shape == (60, 2) and np.isfinite(y).all()
    a, b = y[:30], y[30:]
    between = np.linalg.norm(a.mean(0) - b.mean(0))
    within = max(np.linalg.norm(a - a.mean(0), axis=1).mean(), np.linalg.norm(b - b.mean(0), axis=1).mean())
    assert between > 3 * within
    assert np.array_equal(y, tsne(x, perplexity=10, seed=3))


def test_tsne_caps_perplexity_and_refuses_bad_features():
    x = np.random.default_rng(1).normal(size=(7, 4))
    assert tsne(x, perplexity=50).shape == (7, 2)  # perplexity capped at (N - 1) / 3
    with pytest.raises(ValueError, match="finite features"):
        tsne(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="N >= 2"):
        tsne(np.zeros((1, 3)))
