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

namespace runscope {
namespace {

TEST(ACpuSet, RoundTripsTenToTwentyThreeThroughTheListSyntax) {
  EXPECT_EQ(CpuSet::parse("10-23").to_string(), "10-23");
  EXPECT_EQ(CpuSet::parse("10-23").size(), 14u);
  EXPECT_EQ(CpuSet::from_mask(CpuSet::parse("10-23").to_mask()).to_string(), "10-23");
}

TEST(ACpuSet, MaskPutsCpuIAtBitIMod8OfByteIDiv8) {
  for (unsigned cpu : {0u, 1u, 7u, 8u, 15u, 63u, 64u, 100u, 8191u}) {
    CpuSet set;
    set.add(cpu);
    auto mask = set.to_mask();
    ASSERT_EQ(mask.size(), cpu / 8 + 1) << cpu;
    for (std::size_t i = 0; i + 1 < mask.size(); ++i) EXPECT_EQ(mask[i], 0) << cpu;
    EXPECT_EQ(mask.back(), 1u << (cpu % 8)) << cpu;
    EXPECT_EQ(CpuSet::from_mask(mask), set);
  }
  EXPECT_TRUE(CpuSet().to_mask().empty());
  EXPECT_TRUE(CpuSet::from_mask({0, 0, 0}).empty());
  EXPECT_EQ(CpuSet::from_mask({0x05, 0x80}).to_string(), "0,2,15");
}

TEST(ACpuSet, RejectsAMaskLargerThanTheCpuLimit) {
  std::vector<std::uint8_t> huge(CpuSet::kMaxCpus / 8 + 1, 0);
  EXPECT_THROW(CpuSet::from_mask(huge), Error);
  std::vector<std::uint8_t> max(CpuSet::kMaxCpus / 8, 0);
  max.back() = 0x80;
  EXPECT_EQ(CpuSet::from_mask(max).to_string(), "8191");
}

TEST(ACpuSet, RejectsMoreMalformedLists) {
  for (const char* bad : {",", "1,", ",1", "1-2-3", "0x1", "1.5", "+1", "1 2", "-", "4-a", "8191-8192"}) {
    try {
      CpuSet::parse(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << bad;
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(ACpuSet, AcceptsTheLastCpuAndSingleItemRanges) {
  EXPECT_EQ(CpuSet::parse("8191").to_string(), "8191");
  EXPECT_EQ(CpuSet::parse("5-5").to_string(), "5");
  EXPECT_EQ(CpuSet::parse("0-1,1-2").to_string(), "0-2");
  EXPECT_EQ(CpuSet::parse("63,64").to_string(), "63-64");
}

TEST(ACpuSet, DoesSetAlgebra) {
  auto a = CpuSet::parse("0-7");
  auto b = CpuSet::parse("4-11");
  EXPECT_EQ((a | b).to_string(), "0-11");
  EXPECT_EQ((a & b).to_string(), "4-7");
  EXPECT_EQ((a - b).to_string(), "0-3");
  EXPECT_EQ((b - a).to_string(), "8-11");
  EXPECT_TRUE(a.intersects(b));
  EXPECT_FALSE((a - b).intersects(b));
  EXPECT_TRUE(CpuSet::parse("2-3").is_subset_of(a));
  EXPECT_FALSE(b.is_subset_of(a));
  EXPECT_TRUE(CpuSet().is_subset_of(a));
  EXPECT_TRUE((a - a).empty());
  EXPECT_EQ(a - a, CpuSet());
  CpuSet c = a;
  c |= CpuSet::parse("100");
  c -= CpuSet::parse("100");
  EXPECT_EQ(c, a) << "differences trim their storage so equal sets compare equal";
}

TEST(ACpuSet, AddsRemovesAndCounts) {
  CpuSet set;
  EXPECT_TRUE(set.empty());
  set.add(3);
  set.add(200);
  set.add(3);
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.contains(200));
  EXPECT_FALSE(set.contains(199));
  EXPECT_FALSE(set.contains(100000));
  EXPECT_EQ(set.cpus(), (std::vector<unsigned>{3, 200}));
  set.remove(200);
  set.remove(5000);
  EXPECT_EQ(set, CpuSet::parse("3"));
  set.remove(3);
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.to_string(), "");
  EXPECT_THROW(set.add(CpuSet::kMaxCpus), Error);
  EXPECT_EQ(CpuSet::range(2, 4).to_string(), "2-4");
}

}  // namespace
}  // namespace runscope
