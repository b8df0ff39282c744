#include "common/task_id.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "common/error.hpp"

namespace runscope {
namespace {

using ::testing::HasSubstr;

std::string rejection(const std::string& alloc, const std::string& task) {
  try {
    TaskId id(alloc, task);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    return e.what();
  }
  ADD_FAILURE() << "accepted alloc \"" << alloc << "\" task \"" << task << "\"";
  return "";
}

TEST(ATaskId, DerivesUnitAndCgroupNames) {
  TaskId id("a1b2", "web-server");
  EXPECT_EQ(id.unit_name(), "a1b2-web-server.scope");
  EXPECT_EQ(id.cgroup_name(), "a1b2-web-server");
  EXPECT_EQ(id.display(), "a1b2/web-server");
  EXPECT_EQ(id.alloc(), "a1b2");
  EXPECT_EQ(id.task(), "web-server");
}

TEST(ATaskId, RejectsNamesThatCouldBecomePathsNamingTheField) {
  EXPECT_THAT(rejection("..", "t"), HasSubstr("alloc ID \"..\""));
  EXPECT_THAT(rejection("a", "."), HasSubstr("task name \".\""));
  EXPECT_THAT(rejection("a/b", "t"), HasSubstr("contains '/'"));
  EXPECT_THAT(rejection("a", "../../etc"), HasSubstr("contains '/'"));
  EXPECT_THAT(rejection("", "t"), HasSubstr("alloc ID \"\" is not allowed: it is empty"));
  EXPECT_THAT(rejection("a", ""), HasSubstr("task name"));
}

TEST(ATaskId, RejectsNulNewlineAndControlCharactersShowingThemEscaped) {
  EXPECT_THAT(rejection(std::string("a\0b", 3), "t"), HasSubstr("a\\x00b"));
  EXPECT_THAT(rejection("a", "line\nbreak"), HasSubstr("line\\x0abreak"));
  EXPECT_THAT(rejection("a", "tab\there"), HasSubstr("control character"));
  EXPECT_THAT(rejection("a", "del\x7f"), HasSubstr("control character"));
}

TEST(ATaskId, RejectsInvalidUtf8) {
  EXPECT_THAT(rejection("a", "\xff\xfe"), HasSubstr("not valid UTF-8"));
  EXPECT_THAT(rejection("a", "\xc3"), HasSubstr("not valid UTF-8"));          // truncated sequence
  EXPECT_THAT(rejection("a", "\xe2\x28\xa1"), HasSubstr("not valid UTF-8"));  // bad continuation
}

TEST(ATaskId, RejectsNamesLongerThan255BytesOnceEscaped) {
  EXPECT_THAT(rejection(std::string(300, 'a'), "t"), HasSubstr("longer than 255 bytes"));
  EXPECT_THAT(rejection("a", std::string(64, ' ')), HasSubstr("longer than 255 bytes"));  // 64 x 4 = 256
  EXPECT_THAT(rejection(std::string(125, 'a'), std::string(125, 'b')), HasSubstr("together are too long"));
  EXPECT_NO_THROW(TaskId(std::string(120, 'a'), std::string(128, 'b')));  // 120+1+128+6 = 255
}

TEST(ATaskId, EscapesLikeSystemd) {
  EXPECT_EQ(escape_name("Az09:_.-"), "Az09:_.-");
  EXPECT_EQ(escape_name("a b"), "a\\x20b");
  EXPECT_EQ(escape_name(".hidden"), "\\x2ehidden");
  EXPECT_EQ(escape_name("a.b"), "a.b");
  EXPECT_EQ(escape_name("back\\slash"), "back\\x5cslash");
  EXPECT_EQ(escape_name("caf\xc3\xa9"), "caf\\xc3\\xa9");
  EXPECT_EQ(TaskId("alloc 1", ".t").unit_name(), "alloc\\x201-\\x2et.scope");
}

TEST(ATaskId, KeepsPartsWithDashesApartByValueNotByName) {
  TaskId a("a-b", "c");
  TaskId b("a", "b-c");
  EXPECT_EQ(a.cgroup_name(), b.cgroup_name());  // documented: names are never parsed back
  EXPECT_NE(a, b);
  EXPECT_LT(b, a);
}

TEST(ARandomUuid, IsVersion4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto id = random_uuid();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[8], '-');
    EXPECT_EQ(id[14], '4');
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    EXPECT_NO_THROW(validate_name_part("alloc ID", id));
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace runscope
