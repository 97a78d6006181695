// The Python module hwnas._C. Importing it loads this library, whose static initialisers register the
// hwnas:: ops with the PyTorch dispatcher (TORCH_LIBRARY); the module itself only reports how the
// library was built, so hwnas.ops can say which compiled backends exist.
#include <pybind11/pybind11.h>

#ifndef HWNAS_VERSION
#define HWNAS_VERSION "unknown"
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "hwnas compiled ops (fused inference CBlock); the ops live under torch.ops.hwnas";
  m.attr("__version__") = HWNAS_VERSION;
#ifdef HWNAS_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
#ifdef _OPENMP
  m.attr("with_openmp") = true;
#else
  m.attr("with_openmp") = false;
#endif
#ifdef HWNAS_NATIVE
  m.attr("native_arch") = true;
#else
  m.attr("native_arch") = false;
#endif
}
