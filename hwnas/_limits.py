"""Limits every command enforces before work, so absurd sizes are refused up front rather than ending in an
out-of-memory error minutes later."""
from __future__ import annotations

MAX_INPUT_SIDE = 4096
"""Largest input height or width in pixels (16x the paper's 256 x 128; at 4096 x 4096 one image already gives
CDNet's stem a 1 GiB activation at width 1.0)."""

MAX_WIDTH_MULT = 16.0
"""Largest width multiplier beta (8192 channels in CDNet's widest stage; beyond, a model cannot be built in memory).
Each model also has a smallest beta (4 channels in its narrowest stage), checked when it is built."""

MAX_WORKERS = 256
"""Most DataLoader worker processes (each one a Python process holding a copy of the dataset index)."""

MAX_SYNTHETIC_IMAGES = 2_000_000
"""Most images a synthetic dataset may have (train + test; about 15x MSMT17's 126,441)."""

# Ranges of the float settings of training and search. The optimisers and losses apply them to float32 tensors: a
# value beyond float32 (1e308) fails deep inside a run, one below its smallest normal number (1e-320) silently
# becomes 0. The bounds are far beyond any value a run would use, and well inside float32.
LR_RANGE = (1e-10, 1e3)
"""Smallest and largest learning rate (training lr, search weight and alpha lr)."""

SCHEDULED_LR_MIN = 1e-30
"""Smallest lr a schedule may reach (lr x gamma**k): still a float32 normal number."""

GAMMA_RANGE = (1e-6, 1e3)
"""Smallest and largest lr decay factor per milestone."""

FLOAT32_TINY = 1e-30
"""Smallest nonzero momentum, weight decay, margin, label smoothing or Adam beta."""

WEIGHT_DECAY_MAX = 1e3
MARGIN_MAX = 1e4
LATENCY_WEIGHT_MAX = 1e6
"""Largest latency weight per ms (the default pressure gives 0.03-0.3 per ms on the bundled tables)."""

