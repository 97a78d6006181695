"""Package build for hwnas. Metadata lives here; tool settings live in pyproject.toml.

``kernels/`` (Triton) installs as ``hwnas.kernels``: a top-level ``kernels`` package would clash
with an unrelated PyPI package of that name.

The optional compiled extension ``hwnas._C`` (csrc/, described by CMakeLists.txt) is built by CMake
during ``pip install``: its CPU part always, its CUDA part when nvcc and a CUDA build of PyTorch are
present. If it cannot be built the package installs without it (one warning; ``pip install -v`` shows
it) and runs on the eager/Triton paths. Environment: HWNAS_NO_EXT=1 skips it, HWNAS_WITH_CUDA=0|1
forces the CUDA part off/on, HWNAS_NATIVE=0 drops -march=native.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "hwnas" / "_version.py").read_text()).group(1)
README = ROOT / "README.md"
# Asks for torch's and pybind11's CMake configs. pip builds in an isolated environment without torch,
# so this runs in the target interpreter without pip's PYTHONPATH overlay: the extension must be built
# against the torch it will run with.
_PROBE = ("import json, torch, pybind11; print(json.dumps({'torch': torch.utils.cmake_prefix_path, "
          "'pybind11': pybind11.get_cmake_dir(), 'cuda': torch.version.cuda}))")


def _probe_torch() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    for run_env in (None, env):
        proc = subprocess.run([sys.executable, "-c", _PROBE], check=False, capture_output=True, text=True, env=run_env)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
    raise RuntimeError("torch and pybind11 must be importable by " + sys.executable)


class CMakeBuild(build_ext):
    """Builds the CMake extension; an optional one that fails is dropped with one warning."""

    def run(self) -> None:
        if os.environ.get("HWNAS_NO_EXT") == "1":
            self.extensions = []
            return
        try:
            for ext in self.extensions:
                self.build_cmake(ext)
        except Exception as exc:  # noqa: BLE001 (any failure: the package must still install)
            warnings.warn(f"hwnas: the optional compiled extension hwnas._C was not built ({exc}); hwnas works "
                          "without it on the eager/Triton paths ('python -m hwnas.ops info' says which backends "
                          "run). Needs cmake >= 3.18, a C++20 compiler, torch and pybind11; see docs/deployment.md.",
                          stacklevel=1)
            self.extensions = []

    def build_cmake(self, ext: Extension) -> None:
        found = _probe_torch()
        cmake = shutil.which("cmake")
        if cmake is None:
            raise RuntimeError("cmake is not on PATH")
        with_cuda = os.environ.get("HWNAS_WITH_CUDA", "1" if found["cuda"] and shutil.which("nvcc") else "0")
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / "hwnas_native"
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [f"-DCMAKE_PREFIX_PATH={found['torch']}", f"-Dpybind11_DIR={found['pybind11']}",
                f"-DPython_EXECUTABLE={sys.executable}", f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
                f"-DHWNAS_WITH_CUDA={'ON' if with_cuda == '1' else 'OFF'}",
                f"-DHWNAS_NATIVE={'OFF' if os.environ.get('HWNAS_NATIVE') == '0' else 'ON'}",
                f"-DHWNAS_VERSION={VERSION}", "-DCMAKE_BUILD_TYPE=Release"]
        if shutil.which("ninja"):
            args.append("-GNinja")
        for cmd in ([cmake, "-S", str(ROOT), "-B", str(build_dir), *args],
                    [cmake, "--build", str(build_dir), "-j", str(os.cpu_count() or 2)]):
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise RuntimeError(f"'{' '.join(cmd[:2])} ...' failed:\n{tail}")


setup(
    name="hwnas",
    version=VERSION,
    description="Hardware-aware architecture search for person re-identification (CNet/CDNet, fused kernels)",
    long_description=README.read_text() if README.exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["hwnas", "hwnas.*"]) + ["hwnas.kernels"],
    package_dir={"hwnas.kernels": "kernels"},
    package_data={"hwnas": ["latency/tables/*.json", "latency/specs/*.json"]},
    include_package_data=True,
    ext_modules=[Extension("hwnas._C", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    entry_points={"console_scripts": ["hwnas=hwnas.cli:main"]},
    install_requires=["torch>=2.1", "numpy", "fvcore", "thop", "tqdm", "pillow", "matplotlib", "scipy",
                      "omegaconf>=2.3", "scikit-learn>=1.5"],
    extras_require={
        # Triton (~290 MB) only when asked: the fused kernels run on CUDA GPUs; on a CPU the tests use its interpreter
        "triton": ["triton>=3.0"],
        "tensorboard": ["tensorboard>=2.10"],
        # deployment runtimes (hwnas.deploy.session / export, latency tables per runtime)
        "onnx": ["onnx", "onnxruntime"],
        "onnxruntime": ["onnx", "onnxruntime"],
        "openvino": ["onnx", "openvino"],
        "dev": ["pytest", "pytest-benchmark", "pytest-xdist", "onnx", "onnxruntime", "openvino", "tensorboard>=2.10"],
    },
)
