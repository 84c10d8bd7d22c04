// tessera/plan/tiling.h -- intra-layer (spatial) partitions: one stage's rows over several nodes.
//
// A chain of row-local operators (convolutions, pooling, element-wise) maps input rows to
// output rows through windows: out = floor((in + 2 pad - dilation (kernel - 1) - 1) / stride) + 1.
// Splitting the output rows into tiles, each tile needs a window of input rows plus the halo
// its kernels read (DeepThings' fused tile partitioning). tessera runs the stage's block
// *unchanged* on a slice of its input rows: the block pads the slice's edges with zeros as it
// pads the image's, so the output rows next to an inner edge are wrong and are cropped. A
// window is exact when
//   - the slice starts on a multiple of the chain's total stride (every layer's output rows
//     then sit on the full output's grid), and
//   - every output row kept reads, at every layer, only rows computed exactly from real input
//     rows, or the image's own padding (which the slice reproduces only at the image's edges).
// tile_window() finds the smallest such slice for output rows [a, b) by simulating, layer by
// layer, which rows of the slice's output are exact; torch-free.
#pragma once

#include <string>
#include <vector>

namespace tessera::plan {

// One operator's geometry along the rows (height) of an NCHW tensor. Row-local element-wise
// operators are {1, 1, 0, 1}.
struct RowOp {
  int kernel = 1;     // window height, rows
  int stride = 1;     // row step between windows
  int pad = 0;        // zero rows added above and below
  int dilation = 1;   // spacing between a kernel's rows (1: dense)
  std::string label;  // for errors ("conv2d", "max_pool2d", ...)
};

// Rows out of one operator / a chain; throws InvalidArgument when the input is too small.
int rows_out(const RowOp& op, int rows_in);
// Rows out of a chain: rows_out of each operator in turn.
int rows_out(const std::vector<RowOp>& chain, int rows_in);
// The product of the strides: a tile's slice starts on a multiple of it.
int total_stride(const std::vector<RowOp>& chain);

// One tile of a split: the input rows it is given and the output rows it delivers.
struct TileWindow {
  int in_lo = 0, in_hi = 0;    // input rows [in_lo, in_hi) given to the unchanged chain
  int out_lo = 0, out_hi = 0;  // output rows [out_lo, out_hi) this tile delivers exactly
  int crop = 0;                // where out_lo sits in the chain's output on the slice
  int slice_rows_out = 0;      // rows the chain outputs on the slice
  std::vector<int> layer_rows; // rows of the slice at each operator's input (its work, row by row)
};

// The smallest exact window for output rows [a, b) of `chain` over `rows_in` input rows.
TileWindow tile_window(const std::vector<RowOp>& chain, int rows_in, int a, int b);
// Output rows split into tiles in proportion to `shares` (e.g. node speeds; every tile gets
// at least one row), each with its window. Throws InvalidArgument naming the problem.
std::vector<TileWindow> split_rows(const std::vector<RowOp>& chain, int rows_in, const std::vector<double>& shares);
// Redundant work of a split: (sum over tiles of their slices' rows) / rows_in (1 = none).
double halo_overhead(const std::vector<TileWindow>& tiles, int rows_in);
// A tile's share of the chain's work: each operator's ms (op_ms, for the whole rows) x the
// rows of the tile's slice at its input / the rows it has in the whole run.
double tile_work(const std::vector<RowOp>& chain, int rows_in, const TileWindow& tile, const std::vector<double>& op_ms);

}  // namespace tessera::plan
