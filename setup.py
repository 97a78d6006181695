"""Package build for hwnas. Metadata lives here; tool settings live in pyproject.toml.

``kernels/`` (Triton) installs as ``hwnas.kernels``: a top-level ``kernels`` package would clash
with an unrelated PyPI package of that name.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "hwnas" / "_version.py").read_text()).group(1)

setup(
    name="hwnas",
    version=VERSION,
    description="Hardware-aware architecture search for person re-identification (CNet/CDNet, fused kernels)",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["hwnas", "hwnas.*"]) + ["hwnas.kernels"],
    package_dir={"hwnas.kernels": "kernels"},
    package_data={"hwnas": ["latency/tables/*.json", "latency/specs/*.json"]},
    include_package_data=True,
    install_requires=["torch>=2.1", "numpy", "fvcore", "thop", "tqdm", "pillow", "matplotlib", "scipy"],
    extras_require={
        "triton": ["triton>=3.0"],
        "dev": ["pytest", "pytest-benchmark", "pytest-xdist", "triton>=3.0", "onnx", "onnxruntime"],
    },
)
