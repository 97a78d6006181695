"""Limits every command enforces before work, so absurd sizes are refused up front rather than ending in an
out-of-memory error minutes later."""
from __future__ import annotations

MAX_INPUT_SIDE = 4096
"""Largest input height or width in pixels (16x the paper's 256 x 128; at 4096 x 4096 one image already gives
CDNet's stem a 1 GiB activation at width 1.0)."""
