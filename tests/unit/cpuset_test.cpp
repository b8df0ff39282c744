#include "common/cpuset.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

namespace runscope {
namespace {

TEST(ACpuSet, ParsesAndPrintsTheKernelListSyntax) {
  EXPECT_EQ(CpuSet::parse("0-3,8,10-11").to_string(), "0-3,8,10-11");
  EXPECT_EQ(CpuSet::parse("3,1,2").to_string(), "1-3");
  EXPECT_EQ(CpuSet::parse(" 0-1\n").to_string(), "0-1");
  EXPECT_TRUE(CpuSet::parse("").empty());
}

TEST(ACpuSet, RoundTripsTheSystemdByteMask) {
  auto set = CpuSet::parse("10-23");
  auto mask = set.to_mask();
  ASSERT_EQ(mask.size(), 3u);
  EXPECT_EQ(mask[0], 0x00);
  EXPECT_EQ(mask[1], 0xfc);
  EXPECT_EQ(mask[2], 0xff);
  EXPECT_EQ(CpuSet::from_mask(mask), set);
}

TEST(ACpuSet, RejectsBadListsNamingTheText) {
  for (const char* bad : {"3-1", "a", "-1", "99999999999999999999", "8192", "1,,2", "1-"}) {
    try {
      CpuSet::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace runscope
