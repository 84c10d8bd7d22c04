// The torch-free core: the one placement check, the block schedule, the dtype table,
// Expected. Linked without LibTorch (tessera_plan_tests).
#include <gtest/gtest.h>

#include <set>

#include "tessera/core/dag.h"
#include "tessera/core/dtype.h"
#include "tessera/core/error.h"
#include "tessera/core/expected.h"
#include "tessera/core/tensor_info.h"

using namespace tessera;

namespace {
// input -> 0 -> {1, 2} -> 3 -> output (a diamond); atom 1 is named.
AtomDag diamond() {
  AtomDag d;
  d.num_atoms = 4;
  d.atom_names = {"", "conv1", "", ""};
  d.values = {{kModelInput, {0}, 100, false, "x"}, {0, {1, 2}, 10, false, ""}, {1, {3}, 10, false, ""},
              {2, {3}, 10, false, ""},           {3, {}, 4, true, "y"}};
  return d;
}
}  // namespace

TEST(Placement, OneCheckOneWording) {
  const AtomDag d = diamond();
  EXPECT_EQ(placement_problem(d, {0, 1, 0, 0}, 2), "");
  EXPECT_EQ(placement_problem(d, {0, 1, 0}, 2), "placement has 3 entries, the model has 4 atoms");
  EXPECT_EQ(placement_problem(d, {0, 7, 0, 0}, 2), "placement[1] (conv1) = 7 is not a target in [0, 2)");
  EXPECT_EQ(placement_problem(d, {0, 0, 3, 0}, 2), "placement[2] = 3 is not a target in [0, 2)");
  EXPECT_EQ(placement_problem(d, {0, 0, 3, 0}, -1), "");  // any target >= 0
  EXPECT_EQ(placement_problem(d, {0, 0, -1, 0}, -1), "placement[2] = -1 is not a target index (>= 0)");
  try {
    check_placement(d, {0, 1}, 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_EQ(e.message(), "placement has 2 entries, the model has 4 atoms");
  }
}

TEST(Schedule, BlocksPartitionTheAtomsAndRunInOrder) {
  const AtomDag d = diamond();
  // every placement of the diamond: blocks partition the atoms, each on one target,
  // each block's inputs produced by earlier blocks (or model inputs)
  for (int mask = 0; mask < 16; ++mask) {
    std::vector<int> p(4);
    for (int a = 0; a < 4; ++a) p[a] = (mask >> a) & 1;
    const auto blocks = schedule_blocks(d, p);
    std::set<int> seen, produced = {0};  // value 0 is the model input
    for (const auto& b : blocks) {
      for (int a : b.atoms) {
        EXPECT_TRUE(seen.insert(a).second) << "atom " << a << " twice";
        EXPECT_EQ(p[a], b.target);
      }
      for (int v : b.inputs) EXPECT_TRUE(produced.count(v)) << "value " << v << " read before it exists";
      for (int v : b.outputs) produced.insert(v);
    }
    EXPECT_EQ(seen.size(), 4u);
    EXPECT_TRUE(produced.count(4)) << "the model output is never produced";
  }
  EXPECT_THROW(schedule_blocks(d, {0, -1, 0, 0}), Error);
}

TEST(Dtypes, OneTableForNamesSizesAndWireCodes) {
  std::set<std::string> names;
  std::set<int> codes;
  for (const auto& d : dtypes()) {
    EXPECT_TRUE(names.insert(d.name).second) << d.name;
    EXPECT_TRUE(codes.insert(d.wire_code).second) << d.name;
    EXPECT_GE(d.wire_code, 1);
    EXPECT_EQ(dtype_size(d.name), d.size);
  }
  EXPECT_EQ(dtype_size("float32"), 4);
  EXPECT_EQ(dtype_size("bfloat16"), 2);
  EXPECT_EQ(find_dtype("complex64"), nullptr);
  try {
    dtype_size("complex64");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("unknown dtype 'complex64'"), std::string::npos);
    EXPECT_NE(e.message().find("float32"), std::string::npos);  // the known ones are listed
  }
}

TEST(TensorInfo, MismatchNamesBothSides) {
  TensorInfo a{{1, 8}, "float32", 32}, b{{1, 4}, "float32", 16};
  EXPECT_EQ(tensor_mismatch(a, a), "");
  EXPECT_EQ(tensor_mismatch(a, b), "float32 [1, 8], expected float32 [1, 4]");
}

TEST(Expected, AValueOrTheReason) {
  Expected<int> ok = 3;
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok.value(), 3);
  EXPECT_EQ(ok.error(), "");
  auto bad = Expected<int>::failure("no reply from tcp://127.0.0.1:1 within 5 ms");
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error(), "no reply from tcp://127.0.0.1:1 within 5 ms");
}
