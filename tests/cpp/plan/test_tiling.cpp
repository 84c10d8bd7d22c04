// Intra-layer splits: every tile window is exact against a brute-force run of the whole chain
// (1-D row chains of weighted sums and maxima with their own padding, the slice run unchanged).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "tessera/core/error.h"
#include "tessera/plan/tiling.h"

using namespace tessera;
using namespace tessera::plan;

namespace {

struct Op1D {
  RowOp g;
  bool max = false;
  std::vector<double> w;  // per tap (sums)
};

// One operator over rows, padding the rows it is given with its own padding (zeros for sums,
// -inf for maxima), as a convolution or a pooling layer pads whatever tensor it gets.
std::vector<double> apply_op(const Op1D& op, const std::vector<double>& x) {
  const int n = rows_out(op.g, static_cast<int>(x.size()));
  std::vector<double> y(n);
  for (int r = 0; r < n; ++r) {
    double acc = op.max ? -std::numeric_limits<double>::infinity() : 0.0;
    for (int t = 0; t < op.g.kernel; ++t) {
      const long i = static_cast<long>(r) * op.g.stride - op.g.pad + static_cast<long>(t) * op.g.dilation;
      const bool in = i >= 0 && i < static_cast<long>(x.size());
      if (op.max) {
        if (in) acc = std::max(acc, x[i]);
      } else if (in) {
        acc += op.w[t] * x[i];
      }
    }
    y[r] = op.max ? acc : std::tanh(acc);  // a non-linearity, like the ReLUs between layers
  }
  return y;
}

std::vector<double> run(const std::vector<Op1D>& chain, std::vector<double> x) {
  for (const auto& op : chain) x = apply_op(op, x);
  return x;
}

std::string describe(const std::vector<Op1D>& chain) {
  std::string s;
  for (const auto& op : chain)
    s += (op.max ? "max" : "sum") + std::string("(k") + std::to_string(op.g.kernel) + " s" +
         std::to_string(op.g.stride) + " p" + std::to_string(op.g.pad) + " d" + std::to_string(op.g.dilation) + ") ";
  return s;
}

std::vector<RowOp> geometry(const std::vector<Op1D>& chain) {
  std::vector<RowOp> g;
  for (const auto& op : chain) g.push_back(op.g);
  return g;
}

}  // namespace

TEST(Tiling, EveryWindowIsExactAgainstTheWholeChain) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> layers(1, 6), k(1, 5), st(1, 3), dil(1, 2), rows(8, 160);
  std::uniform_real_distribution<double> u(-1, 1);
  int checked = 0, inner = 0;
  for (int it = 0; it < 3000; ++it) {
    std::vector<Op1D> chain(layers(rng));
    for (auto& op : chain) {
      op.g.kernel = k(rng);
      op.g.stride = std::min(st(rng), op.g.kernel + 1);
      op.g.dilation = op.g.kernel > 1 ? dil(rng) : 1;
      const int eff = op.g.dilation * (op.g.kernel - 1) + 1;
      op.g.pad = std::uniform_int_distribution<int>(0, (eff - 1) / 2 + (eff > 2))(rng);
      op.max = u(rng) < -0.4;
      for (int t = 0; t < op.g.kernel; ++t) op.w.push_back(u(rng));
    }
    const int H = rows(rng);
    int out = 0;
    try {
      out = rows_out(geometry(chain), H);
    } catch (const Error&) {
      continue;  // the input is too small for this chain
    }
    std::vector<double> x(H);
    for (auto& v : x) v = u(rng);
    const auto full = run(chain, x);
    ASSERT_EQ(static_cast<int>(full.size()), out);
    const int a = std::uniform_int_distribution<int>(0, out - 1)(rng);
    const int b = std::uniform_int_distribution<int>(a + 1, out)(rng);
    const TileWindow t = tile_window(geometry(chain), H, a, b);
    ASSERT_LE(0, t.in_lo);
    ASSERT_LT(t.in_lo, t.in_hi);
    ASSERT_LE(t.in_hi, H);
    EXPECT_EQ(t.in_lo % total_stride(geometry(chain)), 0);
    const auto y = run(chain, std::vector<double>(x.begin() + t.in_lo, x.begin() + t.in_hi));
    ASSERT_EQ(static_cast<int>(y.size()), t.slice_rows_out);
    ASSERT_LE(t.crop + (b - a), t.slice_rows_out);
    for (int j = 0; j < b - a; ++j)
      ASSERT_EQ(y[t.crop + j], full[a + j]) << "instance " << it << ": output row " << a + j << " of window ["
                                            << t.in_lo << ", " << t.in_hi << ") for rows [" << a << ", " << b
                                            << ") of " << H << " rows; chain " << describe(chain);
    inner += t.in_lo > 0 && t.in_hi < H;
    ++checked;
  }
  EXPECT_GT(checked, 2000);
  EXPECT_GT(inner, 300);  // windows away from both edges: the halo logic, not the edges, was tested
}

TEST(Tiling, SplitsCoverTheOutputOnceInProportion) {
  // vgg's first block: conv3x3 p1, relu, conv3x3 p1, relu, maxpool 2x2 s2; 224 rows
  const std::vector<RowOp> vgg = {{3, 1, 1, 1, "conv"}, {1, 1, 0, 1, "relu"}, {3, 1, 1, 1, "conv"},
                                  {1, 1, 0, 1, "relu"}, {2, 2, 0, 1, "pool"}};
  EXPECT_EQ(rows_out(vgg, 224), 112);
  const auto tiles = split_rows(vgg, 224, {1, 1, 2});
  ASSERT_EQ(tiles.size(), 3u);
  EXPECT_EQ(tiles[0].out_lo, 0);
  EXPECT_EQ(tiles[2].out_hi, 112);
  for (size_t i = 1; i < tiles.size(); ++i) EXPECT_EQ(tiles[i].out_lo, tiles[i - 1].out_hi);
  EXPECT_EQ(tiles[2].out_hi - tiles[2].out_lo, 56);  // half the rows to the node with twice the share
  // each inner edge costs the halo of two 3x3 convolutions (2 rows each side) and the pool's alignment
  EXPECT_EQ(tiles[1].in_lo, 2 * tiles[1].out_lo - 2);
  EXPECT_GT(halo_overhead(tiles, 224), 1.0);
  EXPECT_LT(halo_overhead(tiles, 224), 1.1);
  EXPECT_THROW(split_rows(vgg, 224, {1, 0}), Error);
  EXPECT_THROW(tile_window(vgg, 224, 5, 5), Error);
  EXPECT_THROW(rows_out({{7, 1, 0, 1, "conv"}}, 3), Error);
  EXPECT_THROW(split_rows(vgg, 4, std::vector<double>(3, 1.0)), Error);  // 3 tiles of 2 rows
}
