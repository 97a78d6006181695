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
