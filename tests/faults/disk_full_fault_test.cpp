// Fault: the state dir's disk is full. A small tmpfs of the test's own (never on or under
// /sys/fs/cgroup) is the state dir; filled, a StartTask must fail with the disk named and leave
// nothing (no cgroup, no process, no state entry); with one page left (launch.json fits,
// task.json doesn't) the same; once there is room, starts work and a restart recovers everything.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "daemon/task_record.hpp"
#include "faults/fault_harness.hpp"
#include "support/held_child.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kStateSize = "256k";
constexpr off_t kPage = 4096;

// A tmpfs mounted on a folder made for it; unmounted (lazily, so a busy fd can't keep it) and
// removed in the destructor, whatever the test did.
class TmpfsMount {
 public:
  explicit TmpfsMount(fs::path dir) : dir_(std::move(dir)) {
    if (dir_.string().rfind("/sys/", 0) == 0) throw Error(ErrorKind::invalid_argument, "refusing to mount on " + dir_.string());
    fs::create_directories(dir_);
    std::string options = std::string("size=") + kStateSize + ",mode=0755";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) != 0) {
      throw_system_error("mount tmpfs on " + dir_.string());
    }
  }
  ~TmpfsMount() {
    ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

// Writes page after page into `path` until the disk says ENOSPC; returns the bytes written.
off_t fill(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throw_system_error("create " + path.string());
  std::string page(kPage, 'x');
  off_t written = 0;
  for (;;) {
    auto n = ::write(fd.get(), page.data(), page.size());
    if (n <= 0) break;
    written += n;
  }
  // A partial last page still holds a whole page: round down, so every byte kept is a full page.
  written -= written % kPage;
  if (::ftruncate(fd.get(), written) != 0) throw_system_error("truncate " + path.string());
  return written;
}

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

TEST(AFullStateDisk, RefusesAStartWithTheDiskNamedLeavesNothingAndRecoversOnceThereIsRoom) {
  if (auto why = testing::fault_skip_reason()) GTEST_SKIP() << *why;
  testing::TempDir tmp;
  TmpfsMount disk(tmp.path() / "state");
  testing::FaultDaemon daemon("diskfull", disk.path());
  testing::Bystanders bystanders(daemon.env(), "diskfull");
  daemon.start();
  auto& client = daemon.client();
  TaskId keep = client.start(testing::shell_spec("df", "keep", "exec sleep 600").dump());
  auto keep_pid = client.inspect(keep)["pid"].get<pid_t>();
  fs::path tasks = disk.path() / daemon::kTasksDir;
  auto state_before = entries(tasks);
  auto cgroups_before = daemon.cgroups();
  auto record_before = daemon::read_task_record(daemon.task_dir(keep));

  fs::path filler = disk.path() / "filler";
  off_t size = fill(filler);
  for (const char* how : {"full", "one-page"}) {
    SCOPED_TRACE(how);
    if (std::string(how) == "one-page") {
      ASSERT_EQ(::truncate(filler.c_str(), size - kPage), 0);
    }
    try {
      client.start(testing::shell_spec("df", "refused", "exec sleep 600").dump());
      ADD_FAILURE() << "a start on a full state disk succeeded";
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("No space left on device"), std::string::npos) << what;
      EXPECT_NE(what.find(disk.path().string()), std::string::npos) << what;
    }
    EXPECT_EQ(entries(tasks), state_before) << "a state entry was left";
    EXPECT_EQ(daemon.cgroups(), cgroups_before) << "a cgroup was left";
    EXPECT_EQ(testing::listed(client).count(TaskId("df", "refused")), 0u);
    EXPECT_EQ(daemon::to_json_text(daemon::read_task_record(daemon.task_dir(keep))),
              daemon::to_json_text(record_before)) << "a running task's state changed";
  }

  fs::remove(filler);
  TaskId later = client.start(testing::shell_spec("df", "later", "exec sleep 600").dump());
  auto later_pid = client.inspect(later)["pid"].get<pid_t>();
  daemon.kill9();
  daemon.start();
  auto after = testing::listed(client);
  EXPECT_EQ(after[keep], "running");
  EXPECT_EQ(after[later], "running");
  EXPECT_EQ(client.inspect(keep)["pid"], keep_pid);
  EXPECT_EQ(client.inspect(later)["pid"], later_pid);

  for (const auto& id : {keep, later}) client.stop(id, 2s);
  EXPECT_EQ(client.inspect(keep)["state"], "killed");
  EXPECT_FALSE(testing::process_alive(keep_pid));
  EXPECT_TRUE(testing::wait_until([&] { return daemon.cgroups().empty(); }, 10s)) << "cgroups left";
  EXPECT_EQ(bystanders.disturbed(), std::vector<std::string>{});
}

}  // namespace
}  // namespace runscope
