#include "systemd/bus_link.hpp"

#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>

#include "systemd/manager.hpp"

namespace runscope::systemd {
namespace {

// JobRemoved is broadcast for every job of every client; results nobody claims are dropped
// oldest first beyond this many.
constexpr std::size_t kMaxFinishedJobs = 8192;
// Upper bound of one poll(), so a stop request or a queued write is never waited on for long.
constexpr int kMaxPollMs = 250;
constexpr auto kWaitSlice = std::chrono::milliseconds(100);

bool is_connection_loss(const std::string& name) {
  return name == kDisconnected || name == kNoReply || name == "System.Error.ECONNRESET" ||
         name == "System.Error.ENOTCONN" || name == "System.Error.EPIPE";
}

// The error's name, or kDisconnected for every way a connection is lost.
std::string name_of(const sdbus::Error& e) {
  return is_connection_loss(e.getName()) ? std::string(kDisconnected) : std::string(e.getName());
}

// sdbus-c++ 1.2 leaks its sd_bus when connecting to an explicit address fails, so the common
// failure, no socket at all, is caught before asking it.
void check_socket_exists(const std::string& address) {
  constexpr std::string_view kUnixPath = "unix:path=";
  if (!address.starts_with(kUnixPath)) return;
  const auto path = address.substr(kUnixPath.size(), address.find(',') - kUnixPath.size());
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw BusError(kDisconnected, "systemd over " + address + ": no D-Bus socket at " + path);
}

}  // namespace

BusLink::BusLink(const std::string& address) {
  check_socket_exists(address);
  try {
    connection_ = address.empty() ? sdbus::createSystemBusConnection()
                                  : sdbus::createSessionBusConnectionWithAddress(address);
    manager_ = compat::make_proxy(*connection_, kSystemdService, kSystemdPath);
    // The match must exist before any job is started, or a fast job's signal is lost.
    compat::on_signal(*manager_, kManagerInterface, "JobRemoved",
                      [this](std::uint32_t, const sdbus::ObjectPath& job, const std::string&,
                             const std::string& result) { on_job_removed(job, result); });
    manager_->callMethod("Subscribe").onInterface(kManagerInterface);
  } catch (const sdbus::Error& e) {
    const std::string where = address.empty() ? "the system bus" : address;
    throw BusError(name_of(e), "systemd over " + where + ": " + e.getMessage());
  }
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw_system_error("eventfd for the bus loop");
  wake_fd_.reset(fd);
  loop_ = std::jthread([this](const std::stop_token& stop) { run(stop); });
}

BusLink::~BusLink() {
  loop_.request_stop();
  wake();
  if (loop_.joinable()) loop_.join();
  fail_pending("the connection to systemd was replaced or closed");
  // Proxy before connection: the proxy's slots live on the connection.
  manager_.reset();
  connection_.reset();
}

bool BusLink::dead() const {
  std::lock_guard lock(mutex_);
  return dead_;
}

std::unique_ptr<sdbus::IProxy> BusLink::proxy_for(const std::string& object_path) {
  return compat::make_proxy(*connection_, kSystemdService, object_path);
}

void BusLink::sync_with_loop() const noexcept {
  try {
    (void)compat::poll_set(*connection_);
  } catch (...) {
    // A dead connection: the loop has stopped touching it.
  }
}

void BusLink::wake() const {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto ignored = ::write(wake_fd_.get(), &one, sizeof one);
}

void BusLink::run(const std::stop_token& stop) {
  try {
    while (!stop.stop_requested()) {
      while (compat::process_pending(*connection_)) {
      }
      // The bus's fds, then our wake fd.
      const auto set = compat::poll_set(*connection_);
      std::array<pollfd, 3> fds{};
      std::copy_n(set.fds.begin(), set.count, fds.begin());
      const std::size_t wake = set.count;
      fds[wake] = {wake_fd_.get(), POLLIN, 0};
      const int timeout = set.timeout_ms < 0 ? kMaxPollMs : std::min(set.timeout_ms, kMaxPollMs);
      if (::poll(fds.data(), wake + 1, timeout) < 0 && errno != EINTR) throw_system_error("poll on the bus");
      if (fds[wake].revents & POLLIN) {
        std::uint64_t count = 0;
        [[maybe_unused]] auto ignored = ::read(wake_fd_.get(), &count, sizeof count);
      }
      expire_job_watches();
    }
  } catch (const sdbus::Error& e) {
    mark_dead(e.getName() + ": " + e.getMessage());
  } catch (const std::exception& e) {
    mark_dead(e.what());
  }
}

void BusLink::mark_dead(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    dead_ = true;
    dead_reason_ = why;
    for (auto* cv : waiters_) cv->notify_all();
  }
  fail_pending(why);
}

void BusLink::fail_pending(const std::string& why) noexcept {
  std::unordered_map<std::uint64_t, ReplyDone> calls;
  std::unordered_map<std::string, JobWatch> jobs;
  {
    std::lock_guard lock(mutex_);
    calls.swap(async_calls_);
    jobs.swap(job_watches_);
  }
  auto lost = std::make_exception_ptr(BusError(kDisconnected, "bus connection lost: " + why));
  for (auto& [id, done] : calls) done(nullptr, lost);
  for (auto& [job, watch] : jobs) watch.done("", lost);
}

void BusLink::expire_job_watches() {
  std::vector<std::pair<std::string, JobDone>> expired;
  {
    std::lock_guard lock(mutex_);
    for (auto it = job_watches_.begin(); it != job_watches_.end();) {
      if (!it->second.deadline.expired()) {
        ++it;
        continue;
      }
      expired.emplace_back(it->first, std::move(it->second.done));
      it = job_watches_.erase(it);
    }
  }
  for (auto& [job, done] : expired) {
    done("", std::make_exception_ptr(BusError(kJobTimeout, "timed out waiting for job " + job, ErrorKind::timeout)));
  }
}

void BusLink::on_job_removed(const std::string& job_path, const std::string& result) {
  JobDone done;
  {
    std::lock_guard lock(mutex_);
    if (finished_jobs_.emplace(job_path, result).second) finished_order_.push_back(job_path);
    while (finished_order_.size() > kMaxFinishedJobs) {
      finished_jobs_.erase(finished_order_.front());
      finished_order_.pop_front();
    }
    if (auto it = job_waiters_.find(job_path); it != job_waiters_.end()) it->second->notify_one();
    auto watch = job_watches_.find(job_path);
    if (watch == job_watches_.end()) return;
    done = std::move(watch->second.done);
    job_watches_.erase(watch);
    finished_jobs_.erase(job_path);  // claimed
    finished_order_.erase(std::find(finished_order_.begin(), finished_order_.end(), job_path));
  }
  done(result, nullptr);
}

template <typename Ready>
void BusLink::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         const Deadline& deadline, Ready ready, const std::string& what) {
  waiters_.insert(&cv);
  struct Unregister {
    std::unordered_set<std::condition_variable*>& set;
    std::condition_variable* cv;
    ~Unregister() { set.erase(cv); }
  } unregister{waiters_, &cv};
  while (!ready()) {
    if (dead_) throw BusError(kDisconnected, "bus connection lost while " + what + ": " + dead_reason_);
    if (deadline.expired()) throw BusError(kJobTimeout, "timed out " + what, ErrorKind::timeout);
    const auto slice = std::min<std::chrono::nanoseconds>(deadline.remaining(), kWaitSlice);
    cv.wait_for(lock, slice);
  }
}

sdbus::MethodReply BusLink::call(sdbus::IProxy& proxy, sdbus::MethodCall& message,
                                 const Deadline& deadline) {
  struct Pending {
    bool done = false;
    std::condition_variable cv;
    std::optional<sdbus::MethodReply> reply;
    std::optional<sdbus::Error> error;
  };
  auto pending = std::make_shared<Pending>();
  const std::string what = "waiting for " + std::string(message.getMemberName()) + " on " + message.getPath();
  const auto timeout_us = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::microseconds>(deadline.remaining()).count());
  sdbus::PendingAsyncCall handle;
  try {
    handle = compat::call_async(
        proxy, message,
        [this, pending](sdbus::MethodReply& reply, const sdbus::Error* error) {
          {
            std::lock_guard lock(mutex_);
            if (error) pending->error = *error;
            else pending->reply = reply;
            pending->done = true;
            pending->cv.notify_one();
          }
        },
        static_cast<std::uint64_t>(timeout_us));
  } catch (const sdbus::Error& e) {
    const bool lost = dead() || is_connection_loss(e.getName());
    throw BusError(lost ? kDisconnected : name_of(e),
                   "sending " + std::string(message.getMemberName()) + ": " + e.getMessage());
  }
  // sd-bus writes at once when it can; only a message left in its write queue needs the loop,
  // which may be polling for input only, to wake up and poll for output too.
  try {
    if (compat::poll_set(*connection_).wants_output()) wake();
  } catch (const sdbus::Error&) {
    wake();  // let the loop find out what is wrong
  }
  std::unique_lock lock(mutex_);
  try {
    wait_until(lock, pending->cv, deadline, [&] { return pending->done; }, what);
  } catch (...) {
    lock.unlock();
    handle.cancel();
    throw;
  }
  // Touching sdbus messages takes sdbus-c++'s own lock, which the loop thread holds while it
  // takes ours: never hold ours past here. `pending` is written once, before done.
  lock.unlock();
  // The loop thread frees the library's half of `handle` after our callback returned, still
  // under sdbus-c++'s lock. Taking that lock once orders it before our half is freed (TSan
  // cannot see the library's own atomics).
  sync_with_loop();
  if (pending->error) {
    const auto& e = *pending->error;
    throw BusError(name_of(e), e.getMessage());
  }
  return *pending->reply;
}

std::string BusLink::wait_job(const std::string& job_path, const Deadline& deadline) {
  std::condition_variable cv;
  std::unique_lock lock(mutex_);
  job_waiters_[job_path] = &cv;
  try {
    wait_until(lock, cv, deadline, [&] { return finished_jobs_.count(job_path) > 0; }, "waiting for job " + job_path);
  } catch (...) {
    job_waiters_.erase(job_path);
    throw;
  }
  job_waiters_.erase(job_path);
  auto node = finished_jobs_.extract(job_path);
  finished_order_.erase(std::find(finished_order_.begin(), finished_order_.end(), job_path));
  return node.mapped();
}

void BusLink::call_async(sdbus::IProxy& proxy, sdbus::MethodCall& message, const Deadline& deadline,
                         ReplyDone done) {
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    if (dead_) {
      auto lost = std::make_exception_ptr(BusError(kDisconnected, "bus connection lost: " + dead_reason_));
      done(nullptr, lost);
      return;
    }
    id = next_async_++;
    async_calls_.emplace(id, std::move(done));
  }
  const auto timeout_us = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::microseconds>(deadline.remaining()).count());
  auto take = [this](std::uint64_t key) -> ReplyDone {
    std::lock_guard lock(mutex_);
    auto it = async_calls_.find(key);
    if (it == async_calls_.end()) return nullptr;  // failed meanwhile (the link died)
    auto found = std::move(it->second);
    async_calls_.erase(it);
    return found;
  };
  try {
    compat::call_async(
        proxy, message,
        [take, id](sdbus::MethodReply& reply, const sdbus::Error* error) {
          auto finish = take(id);
          if (!finish) return;
          if (error) return finish(nullptr, std::make_exception_ptr(BusError(name_of(*error), error->getMessage())));
          finish(&reply, nullptr);
        },
        static_cast<std::uint64_t>(timeout_us));
  } catch (const sdbus::Error& e) {
    if (auto finish = take(id)) {
      const bool lost = dead() || is_connection_loss(e.getName());
      finish(nullptr, std::make_exception_ptr(BusError(lost ? kDisconnected : name_of(e),
                                                       "sending " + std::string(message.getMemberName()) + ": " +
                                                           e.getMessage())));
    }
    return;
  }
  try {
    if (compat::poll_set(*connection_).wants_output()) wake();
  } catch (const sdbus::Error&) {
    wake();
  }
}

void BusLink::on_job(const std::string& job_path, const Deadline& deadline, JobDone done) {
  std::string result;
  {
    std::lock_guard lock(mutex_);
    auto finished = finished_jobs_.find(job_path);
    if (finished == finished_jobs_.end()) {
      if (dead_) {
        result.clear();
      } else {
        job_watches_.insert_or_assign(job_path, JobWatch{deadline, std::move(done)});
        return;
      }
    } else {
      result = finished->second;  // it ended before we asked
      finished_jobs_.erase(finished);
      finished_order_.erase(std::find(finished_order_.begin(), finished_order_.end(), job_path));
    }
  }
  if (result.empty()) {
    done("", std::make_exception_ptr(BusError(kDisconnected, "bus connection lost while waiting for job " + job_path)));
    return;
  }
  done(result, nullptr);
}

}  // namespace runscope::systemd
