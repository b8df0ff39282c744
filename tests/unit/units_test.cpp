#include "common/units.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/error.hpp"

namespace runscope {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(ADuration, ParsesEveryUnit) {
  EXPECT_EQ(parse_duration("7ns"), 7ns);
  EXPECT_EQ(parse_duration("7us"), 7us);
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("5s"), 5s);
  EXPECT_EQ(parse_duration("2m"), 2min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("0"), 0s);
  EXPECT_EQ(parse_duration("0s"), 0s);
}

TEST(ADuration, RejectsBadTextNamingTheFieldAndText) {
  for (const char* bad : {"", "s", "5", "5sec", "5 s", "-5s", "+5s", "1.5s", "5S", "5ms5", "2562048h", "99999999999999999999s"}) {
    try {
      parse_duration(bad, "task.kill_timeout");
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      EXPECT_THAT(e.what(), HasSubstr("task.kill_timeout: \"" + std::string(bad) + "\""));
    }
  }
}

TEST(ADuration, FormatsInTheLargestExactUnit) {
  EXPECT_EQ(format_duration(5s), "5s");
  EXPECT_EQ(format_duration(120s), "120s");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(3us), "3us");
  EXPECT_EQ(format_duration(7ns), "7ns");
  EXPECT_EQ(format_duration(0s), "0s");
  for (const char* text : {"5s", "250ms", "3us", "7ns"}) EXPECT_EQ(format_duration(parse_duration(text)), text);
}

TEST(ASize, ParsesEverySuffixCaseInsensitively) {
  EXPECT_EQ(parse_size("1048576"), 1048576u);
  EXPECT_EQ(parse_size("10B"), 10u);
  EXPECT_EQ(parse_size("4K"), 4096u);
  EXPECT_EQ(parse_size("4k"), 4096u);
  EXPECT_EQ(parse_size("4KiB"), 4096u);
  EXPECT_EQ(parse_size("512M"), 512u << 20);
  EXPECT_EQ(parse_size("512mib"), 512u << 20);
  EXPECT_EQ(parse_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_size("3T"), 3ull << 40);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("16777215T"), 16777215ull << 40);
}

TEST(ASize, RejectsBadTextAndOverflowNamingTheFieldAndText) {
  for (const char* bad : {"", "M", "-1", "1.5G", "12X", "1 G", "1GB", "16777216T", "18446744073709551616"}) {
    try {
      parse_size(bad, "memory_max");
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      EXPECT_THAT(e.what(), HasSubstr("memory_max: \"" + std::string(bad) + "\""));
    }
  }
}

TEST(ASize, FormatsInTheLargestExactUnit) {
  EXPECT_EQ(format_size(512u << 20), "512M");
  EXPECT_EQ(format_size(2ull << 30), "2G");
  EXPECT_EQ(format_size(1536), "1536");
  EXPECT_EQ(format_size(4096), "4K");
  EXPECT_EQ(format_size(0), "0");
  EXPECT_EQ(parse_size(format_size(3ull << 40)), 3ull << 40);
}

}  // namespace
}  // namespace runscope
