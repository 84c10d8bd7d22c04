#include <gtest/gtest.h>

#include "tessera/core/error.h"

namespace {
void fails(int atom) { TESSERA_CHECK(atom < 3, InvalidArgument, "atom id {} out of range", atom); }
}  // namespace

TEST(Error, RecordsKindMessageAndPlace) {
  try {
    fails(7);
    FAIL() << "expected an error";
  } catch (const tessera::Error& e) {
    EXPECT_EQ(e.kind(), tessera::ErrorKind::InvalidArgument);
    EXPECT_EQ(e.message(), "atom id 7 out of range");
    EXPECT_NE(e.where().find("fails"), std::string::npos);
    EXPECT_NE(e.where().find("test_error.cpp"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("atom id 7"), std::string::npos);
  }
  EXPECT_NO_THROW(fails(1));
  EXPECT_STREQ(tessera::error_kind_name(tessera::ErrorKind::Deadline), "Deadline");
}

// The kinds carry the names of the Python classes they become (EngineError, DeadlineError,
// UnsupportedError); the names before 0.2 still compile, as the same kinds, for one release.
TEST(Error, KindsAreNamedLikePythonsClassesAndOldNamesStillCompile) {
  EXPECT_STREQ(tessera::error_kind_name(tessera::ErrorKind::Engine), "Engine");
  EXPECT_STREQ(tessera::error_kind_name(tessera::ErrorKind::Unsupported), "Unsupported");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  EXPECT_EQ(tessera::ErrorKind::Runtime, tessera::ErrorKind::Engine);
  EXPECT_EQ(tessera::ErrorKind::Timeout, tessera::ErrorKind::Deadline);
  EXPECT_EQ(tessera::ErrorKind::NotImplemented, tessera::ErrorKind::Unsupported);
#pragma GCC diagnostic pop
}
