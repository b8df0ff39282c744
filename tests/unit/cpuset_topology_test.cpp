#include "cpuset/topology.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "common/error.hpp"

namespace runscope::cpuset {
namespace {

namespace fs = std::filesystem;

// A fake /sys/devices/system in a temp folder.
class FakeSysfs {
 public:
  FakeSysfs() {
    std::string tmpl = (fs::temp_directory_path() / "runscope-fake-sysfs-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
    root_ = tmpl;
  }
  ~FakeSysfs() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void put(const fs::path& rel, const std::string& content) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << content;
  }
  void cpu(unsigned id, unsigned package, const std::string& siblings) {
    auto dir = fs::path("cpu") / ("cpu" + std::to_string(id)) / "topology";
    put(dir / "physical_package_id", std::to_string(package) + "\n");
    put(dir / "thread_siblings_list", siblings + "\n");
  }
  const fs::path& root() const { return root_; }

 private:
  fs::path root_;
};

TEST(ATopology, ReadsSiblingsPackagesAndNodesFromSysfs) {
  FakeSysfs sys;
  sys.put("cpu/online", "0-3\n");
  sys.cpu(0, 0, "0,2");
  sys.cpu(1, 1, "1,3");
  sys.cpu(2, 0, "0,2");
  sys.cpu(3, 1, "1,3");
  sys.put("node/node0/cpulist", "0,2\n");
  sys.put("node/node1/cpulist", "1,3\n");
  sys.put("node/online", "0-1\n");
  auto topo = Topology::read(sys.root());
  ASSERT_EQ(topo.cpus().size(), 4u);
  EXPECT_EQ(topo.online().to_string(), "0-3");
  EXPECT_EQ(topo.find(3)->package, 1u);
  EXPECT_EQ(topo.find(3)->node, 1u);
  EXPECT_EQ(topo.find(2)->siblings.to_string(), "0,2");
  ASSERT_EQ(topo.cores().size(), 2u);
  EXPECT_EQ(topo.cores()[1].to_string(), "1,3");
}

TEST(ATopology, IgnoresOfflineSiblingsAndMissingNumaInformation) {
  FakeSysfs sys;
  sys.put("cpu/online", "0,2\n");
  sys.cpu(0, 0, "0-1");
  sys.cpu(2, 0, "2-3");
  auto topo = Topology::read(sys.root());
  EXPECT_EQ(topo.online().to_string(), "0,2");
  EXPECT_EQ(topo.find(0)->siblings.to_string(), "0");
  EXPECT_EQ(topo.find(0)->node, 0u);
  EXPECT_EQ(topo.find(1), nullptr);
}

TEST(ATopology, NamesTheFileAtFault) {
  FakeSysfs sys;
  sys.put("cpu/online", "0-1\n");
  sys.cpu(0, 0, "0");
  try {
    Topology::read(sys.root());
    ADD_FAILURE() << "read a topology with cpu1 missing";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("cpu1/topology/physical_package_id"));
  }
  sys.cpu(1, 0, "x");
  EXPECT_THROW(Topology::read(sys.root()), Error);
}

TEST(ATopology, ReadsThisMachine) {
  if (!fs::exists("/sys/devices/system/cpu/online")) GTEST_SKIP() << "no sysfs";
  auto topo = Topology::read();
  EXPECT_FALSE(topo.online().empty());
  for (const auto& cpu : topo.cpus()) EXPECT_TRUE(cpu.siblings.contains(cpu.id));
}

TEST(ATopology, BuildsSyntheticMachinesNumberedLikeLinux) {
  auto topo = Topology::synthetic(2, 8, 2);
  EXPECT_EQ(topo.online().to_string(), "0-31");
  EXPECT_EQ(topo.find(0)->siblings.to_string(), "0,16");
  EXPECT_EQ(topo.find(9)->package, 1u);
  EXPECT_EQ(topo.find(25)->siblings.to_string(), "9,25");
  EXPECT_EQ(topo.cores().size(), 16u);
  auto odd = Topology::synthetic(1, 4, 2, CpuSet::parse("0,2,5-7"));
  EXPECT_EQ(odd.online().to_string(), "0,2,5-7");
  EXPECT_EQ(odd.find(2)->siblings.to_string(), "2,6");
  EXPECT_EQ(odd.find(0)->siblings.to_string(), "0");
}

}  // namespace
}  // namespace runscope::cpuset
