// graph/threads.cpp -- LibTorch's and OpenBLAS's thread counts together (see tessera/graph/threads.h).
#include "tessera/graph/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include "tessera/core/error.h"

namespace tessera {

namespace {
using SetFn = void (*)(int);
using GetFn = int (*)();
template <class F>
F blas_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}
}  // namespace

void set_intra_op_threads(int threads) {
  TESSERA_CHECK(threads >= 1, InvalidArgument, "threads must be >= 1, got {}", threads);
  at::set_num_threads(threads);
  if (auto set = blas_symbol<SetFn>("openblas_set_num_threads")) set(threads);
}

int intra_op_threads() { return at::get_num_threads(); }

int blas_threads() {
  auto get = blas_symbol<GetFn>("openblas_get_num_threads");
  return get ? get() : -1;
}

}  // namespace tessera
