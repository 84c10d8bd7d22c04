// plan/tiling.cpp -- exact row windows for intra-layer splits (see tessera/plan/tiling.h).
#include "tessera/plan/tiling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tessera/core/error.h"

namespace tessera::plan {

namespace {
void check_op(const RowOp& op) {
  TESSERA_CHECK(op.kernel >= 1 && op.stride >= 1 && op.pad >= 0 && op.dilation >= 1, InvalidArgument,
                "row operator {} has kernel {}, stride {}, pad {}, dilation {}: each must be >= 1 (pad >= 0)",
                op.label.empty() ? "?" : op.label, op.kernel, op.stride, op.pad, op.dilation);
}

// Which rows of the chain's output on input rows [lo, hi) are exact. Returns false when none
// is (or the slice is misaligned / too small). out_s: the slice output's first absolute row.
bool exact_rows(const std::vector<RowOp>& chain, int rows_in, int lo, int hi, int& v_out, int& w_out, int& out_s_out,
                int& out_e_out, std::vector<int>* layer_rows = nullptr) {
  long s = lo, e = hi, v = lo, w = hi, H = rows_in;
  if (layer_rows) layer_rows->clear();
  for (const auto& op : chain) {
    if (layer_rows) layer_rows->push_back(static_cast<int>(e - s));
    const long eff = static_cast<long>(op.dilation) * (op.kernel - 1) + 1;
    if (s % op.stride != 0) return false;
    if (e - s + 2L * op.pad < eff) return false;
    const long n = (e - s + 2L * op.pad - eff) / op.stride + 1;
    const long Hout = (H + 2L * op.pad - eff) / op.stride + 1;
    const long out_s = s / op.stride, out_e = out_s + n;
    // top: every tap at or above v, unless the slice starts at the image's edge (its padding is the image's)
    // (the slice's padding is the image's only where the slice starts at row 0 and row 0 onwards is exact)
    long first = out_s;
    if (!(s == 0 && v == 0)) first = std::max(first, (v + op.pad + op.stride - 1) / op.stride);
    // bottom: every tap below w, unless the exact rows reach the image's last row: a slice can have
    // as many output rows as the image (e == H) with its last ones wrong, so e == H alone is not enough
    long last = std::min(out_e, Hout);  // exclusive
    if (!(w == H && e == H))
      last = std::min(last, (w - 1 + op.pad - (eff - 1)) >= 0 ? (w - 1 + op.pad - (eff - 1)) / op.stride + 1 : 0L);
    if (first >= last) return false;
    s = out_s, e = out_e, v = first, w = last, H = Hout;
  }
  v_out = static_cast<int>(v), w_out = static_cast<int>(w), out_s_out = static_cast<int>(s),
  out_e_out = static_cast<int>(e);
  return true;
}
}  // namespace

int rows_out(const RowOp& op, int rows_in) {
  check_op(op);
  const long eff = static_cast<long>(op.dilation) * (op.kernel - 1) + 1;
  TESSERA_CHECK(rows_in + 2L * op.pad >= eff, InvalidArgument, "{}: {} rows with pad {} are fewer than its window {}",
                op.label.empty() ? "row operator" : op.label, rows_in, op.pad, eff);
  return static_cast<int>((rows_in + 2L * op.pad - eff) / op.stride + 1);
}

int rows_out(const std::vector<RowOp>& chain, int rows_in) {
  for (const auto& op : chain) rows_in = rows_out(op, rows_in);
  return rows_in;
}

int total_stride(const std::vector<RowOp>& chain) {
  long s = 1;
  for (const auto& op : chain) {
    check_op(op);
    s *= op.stride;
    TESSERA_CHECK(s <= (1 << 20), InvalidArgument, "the chain's total stride exceeds 2^20");
  }
  return static_cast<int>(s);
}

TileWindow tile_window(const std::vector<RowOp>& chain, int rows_in, int a, int b) {
  const int out = rows_out(chain, rows_in);
  TESSERA_CHECK(0 <= a && a < b && b <= out, InvalidArgument, "output rows [{}, {}) are not inside [0, {})", a, b, out);
  const int S = total_stride(chain);
  int v, w, os, oe;
  // the top: slide the slice's start up (in steps of the total stride) until row a is exact
  int lo = std::min((a * static_cast<long>(S)) / S * S, static_cast<long>(rows_in - 1)) / S * S;
  while (true) {
    if (exact_rows(chain, rows_in, lo, rows_in, v, w, os, oe) && v <= a) break;
    TESSERA_CHECK(lo > 0, Engine, "no exact window for rows [{}, {}) (a bug: the whole input is one)", a, b);
    lo -= S;
  }
  // the bottom: grow the slice's end until row b - 1 is exact
  int hi = std::min<long>(rows_in, std::max<long>(lo + 1, static_cast<long>(b) * S));
  while (!(exact_rows(chain, rows_in, lo, hi, v, w, os, oe) && v <= a && w >= b)) {
    TESSERA_CHECK(hi < rows_in, Engine, "no exact window for rows [{}, {}) (a bug: the whole input is one)", a, b);
    ++hi;
  }
  TileWindow t;
  exact_rows(chain, rows_in, lo, hi, v, w, os, oe, &t.layer_rows);
  t.in_lo = lo, t.in_hi = hi, t.out_lo = a, t.out_hi = b, t.crop = a - os, t.slice_rows_out = oe - os;
  return t;
}

std::vector<TileWindow> split_rows(const std::vector<RowOp>& chain, int rows_in, const std::vector<double>& shares) {
  TESSERA_CHECK(!shares.empty(), InvalidArgument, "a split needs at least one share");
  double total = 0;
  for (double x : shares) {
    TESSERA_CHECK(std::isfinite(x) && x > 0, InvalidArgument, "tile share {} must be finite and > 0", x);
    total += x;
  }
  const int out = rows_out(chain, rows_in);
  const int T = static_cast<int>(shares.size());
  TESSERA_CHECK(T <= out, InvalidArgument, "{} tiles of {} output rows: at most one tile per row", T, out);
  std::vector<int> cut(T + 1, 0);
  double acc = 0;
  for (int i = 1; i < T; ++i) {
    acc += shares[i - 1];
    cut[i] = static_cast<int>(std::lround(out * acc / total));
    cut[i] = std::clamp(cut[i], cut[i - 1] + 1, out - (T - i));
  }
  cut[T] = out;
  std::vector<TileWindow> tiles;
  for (int i = 0; i < T; ++i) tiles.push_back(tile_window(chain, rows_in, cut[i], cut[i + 1]));
  return tiles;
}

double halo_overhead(const std::vector<TileWindow>& tiles, int rows_in) {
  double rows = 0;
  for (const auto& t : tiles) rows += t.in_hi - t.in_lo;
  return rows_in > 0 ? rows / rows_in : 1.0;
}

double tile_work(const std::vector<RowOp>& chain, int rows_in, const TileWindow& tile,
                 const std::vector<double>& op_ms) {
  TESSERA_CHECK(op_ms.size() == chain.size() && tile.layer_rows.size() == chain.size(), InvalidArgument,
                "tile_work: {} operators, {} costs, {} layer rows", chain.size(), op_ms.size(), tile.layer_rows.size());
  double ms = 0;
  int rows = rows_in;
  for (size_t i = 0; i < chain.size(); ++i) {
    ms += op_ms[i] * tile.layer_rows[i] / std::max(rows, 1);
    rows = rows_out(chain[i], rows);
  }
  return ms;
}

}  // namespace tessera::plan
