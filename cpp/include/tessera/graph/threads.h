// tessera/graph/threads.h -- process settings that decide how fast kernels run: how many CPU
// threads LibTorch's kernels use (BLAS included), and whether freed tensors' memory is kept.
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

// Sets LibTorch's intra-op threads and OpenBLAS's pool to `threads` (>= 1, else
// InvalidArgument). Process-wide for BLAS; OpenMP's count is the calling thread's.
void set_intra_op_threads(int threads);
int intra_op_threads();  // at::get_num_threads()
// The OpenBLAS pool size, or -1 when this process has no OpenBLAS.
int blas_threads();

// glibc serves every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB)
// with a fresh mmap and returns it with munmap: every large activation of every request then
// can pay a page fault per 4 KiB page on first touch (costly in a VM), and the heap's top is
// trimmed and regrown as large blocks come and go. Measured here: vgg11's first ReLU atom, alone
// as the profiler times it, 38 ms instead of 0.8 (its 12.8 MB output faulted in every round);
// whole-model runs, interleaved, moved within the machine's noise either way (154-202 ms).
// keep_freed_memory(true) raises the mmap and trim thresholds (mallopt) so freed blocks
// stay in the heap and are reused: the process's resident memory then stays at its peak.
// Process-wide; the server (ServerOptions::keep_freed_memory), profile() and `import tessera`
// turn it on (TESSERA_KEEP_FREED_MEMORY=0 in the environment keeps glibc's defaults).
// Returns false where mallopt is not glibc's.
bool keep_freed_memory(bool on = true);

}  // namespace tessera
