// The public C++ API: the torch-free layers' umbrella headers compile without LibTorch (this
// test binary has no torch include path), and the checks a Python binding used to make itself
// are the engine's, so a C++ caller gets them too.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "tessera/core.h"
#include "tessera/plan.h"
#include "tessera/predict.h"

using namespace tessera;

namespace {
template <typename F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument) << e.what();
    return e.message();
  }
  ADD_FAILURE() << "expected an InvalidArgument error";
  return "";
}

// Three atoms in a chain; the device is 10x slower.
plan::CostModel chain() {
  plan::CostModel cm;
  cm.dag.num_atoms = 3;
  cm.dag.values = {DagValue{kModelInput, {0}, 6e5, false, "x"}, DagValue{0, {1}, 1e5, false, "a"},
                   DagValue{1, {2}, 4e5, false, "b"}, DagValue{2, {}, 4e3, true, "y"}};
  cm.dag.param_bytes = {1e5, 1e5, 1e5};
  cm.compute_ms = {{10, 20, 30}, {1, 2, 3}};
  return cm;
}
}  // namespace

TEST(Api, PlanStatusNamesRoundTripAndAnUnknownOneIsNamed) {
  for (auto s : {plan::PlanStatus::Optimal, plan::PlanStatus::Feasible, plan::PlanStatus::Infeasible,
                 plan::PlanStatus::BadInput})
    EXPECT_EQ(plan::parse_status(plan::status_name(s)), s);
  const std::string msg = invalid_argument_message([] { plan::parse_status("great"); });
  EXPECT_NE(msg.find("'great'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad_input"), std::string::npos) << msg;
}

TEST(Api, ParametricLookupRefusesABandwidthThatIsNotPositive) {
  const plan::CostModel cm = chain();
  plan::Context ctx;
  ctx.bandwidth_mbps = 10;
  ctx.rtt_ms = 5;
  const plan::ParametricPlanner table(cm, ctx);
  EXPECT_GE(table.lookup_index(5.0), 0);
  for (double bw : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    const std::string msg = invalid_argument_message([&] { table.lookup_index(bw); });
    EXPECT_NE(msg.find("bandwidth_mbps"), std::string::npos) << msg;
  }
}

TEST(Api, ExplainChecksThePlanAgainstTheCostModel) {
  const plan::CostModel cm = chain();
  plan::Plan p;
  p.placement = {0, 1};  // two atoms for a three-atom model
  const std::string msg = invalid_argument_message([&] { p.explain(cm); });
  EXPECT_NE(msg.find("2 atoms"), std::string::npos) << msg;
}

TEST(Api, PipelinePlannersByNameAndAnUnknownNameListsThem) {
  EXPECT_EQ(plan::pipeline_planner_names().size(), 4u);
  plan::PipelineNetwork net;
  const std::string msg = invalid_argument_message([&] { plan::plan_pipeline(chain().dag, net, "magic", {0}); });
  EXPECT_NE(msg.find("'magic'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pso_dp"), std::string::npos) << msg;
}

TEST(Api, OneNamePerConcept) {
  // A plan's block is the scheduled block; a link's cost is not the emulated link; the
  // predictors' machine state is not the planner's context.
  plan::Plan p;
  static_assert(std::is_same_v<decltype(p.blocks)::value_type, ScheduledBlock>);
  static_assert(std::is_same_v<decltype(plan::CostModel::links)::value_type::value_type, plan::LinkCost>);
  predict::MachineState m;
  EXPECT_EQ(m.threads, 1);
  EXPECT_EQ(m.background_load, 0.0);
}
