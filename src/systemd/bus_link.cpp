#include "systemd/bus_link.hpp"

#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cstdint>

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

}  // namespace

BusLink::BusLink(const std::string& address) {
  try {
    connection_ = address.empty() ? sdbus::createSystemBusConnection()
                                  : sdbus::createSessionBusConnectionWithAddress(address);
    manager_ = sdbus::createProxy(*connection_, kSystemdService, kSystemdPath);
    // The match must exist before any job is started, or a fast job's signal is lost.
    manager_->uponSignal("JobRemoved")
        .onInterface(kManagerInterface)
        .call([this](std::uint32_t, const sdbus::ObjectPath& job, const std::string&,
                     const std::string& result) { on_job_removed(job, result); });
    manager_->finishRegistration();
    manager_->callMethod("Subscribe").onInterface(kManagerInterface);
  } catch (const sdbus::Error& e) {
    const std::string where = address.empty() ? "the system bus" : address;
    throw BusError(is_connection_loss(e.getName()) ? kDisconnected : e.getName(),
                   "systemd over " + where + ": " + e.getMessage());
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
  // Proxy before connection: the proxy's slots live on the connection.
  manager_.reset();
  connection_.reset();
}

bool BusLink::dead() const {
  std::lock_guard lock(mutex_);
  return dead_;
}

std::unique_ptr<sdbus::IProxy> BusLink::proxy_for(const std::string& object_path) {
  return sdbus::createProxy(*connection_, kSystemdService, object_path);
}

void BusLink::sync_with_loop() const noexcept {
  try {
    (void)connection_->getEventLoopPollData();
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
      while (connection_->processPendingRequest()) {
      }
      const auto poll_data = connection_->getEventLoopPollData();
      pollfd fds[2] = {{poll_data.fd, poll_data.events, 0}, {wake_fd_.get(), POLLIN, 0}};
      int timeout = poll_data.getPollTimeout();
      timeout = timeout < 0 ? kMaxPollMs : std::min(timeout, kMaxPollMs);
      if (::poll(fds, 2, timeout) < 0 && errno != EINTR) throw_system_error("poll on the bus");
      if (fds[1].revents & POLLIN) {
        std::uint64_t count = 0;
        [[maybe_unused]] auto ignored = ::read(wake_fd_.get(), &count, sizeof count);
      }
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
}

void BusLink::on_job_removed(const std::string& job_path, const std::string& result) {
  {
    std::lock_guard lock(mutex_);
    if (finished_jobs_.emplace(job_path, result).second) finished_order_.push_back(job_path);
    while (finished_order_.size() > kMaxFinishedJobs) {
      finished_jobs_.erase(finished_order_.front());
      finished_order_.pop_front();
    }
    if (auto it = job_waiters_.find(job_path); it != job_waiters_.end()) it->second->notify_one();
  }
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
  const std::string what = "waiting for " + message.getMemberName() + " on " + message.getPath();
  const auto timeout_us = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::microseconds>(deadline.remaining()).count());
  sdbus::PendingAsyncCall handle;
  try {
    handle = proxy.callMethod(
        message,
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
    throw BusError(lost ? kDisconnected : e.getName(), "sending " + message.getMemberName() + ": " + e.getMessage());
  }
  // sd-bus writes at once when it can; only a message left in its write queue needs the loop,
  // which may be polling for input only, to wake up and poll for output too.
  try {
    if (connection_->getEventLoopPollData().events & POLLOUT) wake();
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
    throw BusError(is_connection_loss(e.getName()) ? kDisconnected : e.getName(), e.getMessage());
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

}  // namespace runscope::systemd
