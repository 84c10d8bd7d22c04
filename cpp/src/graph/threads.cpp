// graph/threads.cpp -- LibTorch's and OpenBLAS's thread counts together (see tessera/graph/threads.h).
#include "tessera/graph/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

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

bool keep_freed_memory(bool on) {
#if defined(__GLIBC__)
  if (const char* env = std::getenv("TESSERA_KEEP_FREED_MEMORY"); env && std::strcmp(env, "0") == 0) on = false;
  if (!on) return true;
  // 1 GiB: tensors up to that size come from (and return to) the heap
  const int big = 1 << 30;
  return mallopt(M_MMAP_THRESHOLD, big) == 1 && mallopt(M_TRIM_THRESHOLD, big) == 1;
#else
  (void)on;
  return false;
#endif
}

}  // namespace tessera
