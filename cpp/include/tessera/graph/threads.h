// tessera/graph/threads.h -- how many CPU threads LibTorch's kernels use, BLAS included.
//
// at::set_num_threads sets OpenMP's thread count, but Debian's LibTorch hands its
// GEMMs (Linear layers and the im2col convolutions) to OpenBLAS, whose pthread build
// keeps its own pool of one thread per core: measured, a server started with one
// intra-op thread burned two cores (two threads at equal CPU, one in sgemm_thread_nn).
// set_intra_op_threads sets both (OpenBLAS through openblas_set_num_threads when the
// process has it; process-wide). OpenMP's count is per thread: a thread that runs
// blocks and was not the one that set it calls at::init_num_threads() first.
#pragma once

namespace tessera {

void set_intra_op_threads(int threads);
int intra_op_threads();  // at::get_num_threads()
// The OpenBLAS pool size, or -1 when this process has no OpenBLAS.
int blas_threads();

}  // namespace tessera
