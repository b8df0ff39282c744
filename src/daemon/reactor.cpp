#include "daemon/reactor.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include <array>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/error.hpp"

namespace runscope::daemon {
namespace {

constexpr Reactor::Key kWakeKey = 0;
constexpr Reactor::Key kTimerKey = ~Reactor::Key{0};
constexpr std::size_t kEventsPerWait = 64;

void drain(int fd) {
  std::uint64_t count;
  while (::read(fd, &count, sizeof count) > 0) {
  }
}

void add(int epoll, int fd, std::uint32_t events, Reactor::Key key) {
  epoll_event e{};
  e.events = events;
  e.data.u64 = key;
  if (::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &e) < 0) throw_system_error("epoll_ctl add fd " + std::to_string(fd));
}

// Exceptions never leave a callback: the reactor must keep serving every other task.
void guarded(const Reactor::Callback& callback) noexcept {
  try {
    callback();
  } catch (const std::exception& e) {
    spdlog::error("task service: an event handler failed: {}", e.what());
  } catch (...) {
    spdlog::error("task service: an event handler failed");
  }
}

}  // namespace

Reactor::Reactor()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      timer_fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) {
  if (!epoll_ || !wake_fd_ || !timer_fd_) throw_system_error("the task service's reactor (epoll, eventfd, timerfd)");
  add(epoll_.get(), wake_fd_.get(), EPOLLIN, kWakeKey);
  add(epoll_.get(), timer_fd_.get(), EPOLLIN, kTimerKey);
  thread_ = std::thread([this] { run(); });
}

Reactor::~Reactor() { stop(); }

void Reactor::stop() noexcept {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake();
  if (thread_.joinable() && !on_reactor_thread()) thread_.join();
  std::map<Key, Watch> watches;
  std::map<Key, Callback> timers;
  std::vector<Callback> posted;
  {
    std::lock_guard lock(mutex_);
    for (auto& [key, w] : watches_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, w.fd, nullptr);
    watches.swap(watches_);
    timers.swap(timers_);
    posted.swap(posted_);
  }
  // Destroyed outside the lock: they may hold the last reference to a task.
}

void Reactor::wake() const {
  std::uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

Reactor::Key Reactor::watch(int fd, Callback ready) {
  std::lock_guard lock(mutex_);
  Key key = next_key_++;
  add(epoll_.get(), fd, EPOLLIN | EPOLLONESHOT, key);
  watches_.emplace(key, Watch{fd, std::move(ready)});
  return key;
}

void Reactor::rearm(Key key) {
  std::lock_guard lock(mutex_);
  auto it = watches_.find(key);
  if (it == watches_.end()) return;
  epoll_event e{};
  e.events = EPOLLIN | EPOLLONESHOT;
  e.data.u64 = key;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second.fd, &e) < 0) throw_system_error("epoll_ctl rearm");
}

void Reactor::unwatch(Key key) noexcept {
  Callback dropped;
  std::lock_guard lock(mutex_);
  auto it = watches_.find(key);
  if (it == watches_.end()) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
  dropped = std::move(it->second.ready);
  watches_.erase(it);
}

Reactor::Key Reactor::at(TimePoint when, Callback fire) {
  Key key;
  {
    std::lock_guard lock(mutex_);
    key = next_key_++;
    timers_.emplace(key, std::move(fire));
    deadlines_.emplace(when, key);
    if (when < armed_for_) arm_timerfd();
  }
  return key;
}

void Reactor::cancel(Key key) noexcept {
  Callback dropped;
  std::lock_guard lock(mutex_);
  auto it = timers_.find(key);
  if (it == timers_.end()) return;
  dropped = std::move(it->second);
  timers_.erase(it);  // its deadline entry is skipped when it comes up
}

void Reactor::post(Callback work) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    posted_.push_back(std::move(work));
  }
  wake();
}

std::size_t Reactor::watched() const {
  std::lock_guard lock(mutex_);
  return watches_.size() + timers_.size();
}

void Reactor::arm_timerfd() {
  while (!deadlines_.empty() && timers_.count(deadlines_.top().second) == 0) deadlines_.pop();
  itimerspec spec{};
  armed_for_ = deadlines_.empty() ? TimePoint::max() : deadlines_.top().first;
  if (!deadlines_.empty()) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(armed_for_.time_since_epoch()).count();
    if (ns <= 0) ns = 1;  // 0 would disarm it
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  }
  // steady_clock is CLOCK_MONOTONIC on Linux: absolute deadlines need no conversion.
  if (::timerfd_settime(timer_fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) < 0) {
    spdlog::error("task service: timerfd_settime: {}", std::strerror(errno));
  }
}

void Reactor::run_timers() {
  drain(timer_fd_.get());
  std::vector<Callback> due;
  {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    while (!deadlines_.empty() && deadlines_.top().first <= now) {
      auto it = timers_.find(deadlines_.top().second);
      deadlines_.pop();
      if (it == timers_.end()) continue;  // cancelled
      due.push_back(std::move(it->second));
      timers_.erase(it);
    }
    arm_timerfd();
  }
  for (auto& f : due) guarded(f);
}

void Reactor::run_posted() {
  drain(wake_fd_.get());
  std::vector<Callback> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(posted_);
  }
  for (auto& w : work) guarded(w);
}

void Reactor::run() {
  std::array<epoll_event, kEventsPerWait> events{};
  for (;;) {
    int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      spdlog::critical("task service: the reactor cannot wait: {}", std::strerror(errno));
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    for (int i = 0; i < n; ++i) {
      Key key = events[static_cast<std::size_t>(i)].data.u64;
      if (key == kWakeKey) {
        run_posted();
      } else if (key == kTimerKey) {
        run_timers();
      } else {
        Callback ready;
        {
          std::lock_guard lock(mutex_);
          auto it = watches_.find(key);
          if (it == watches_.end()) continue;  // unwatched meanwhile
          ready = it->second.ready;            // a copy: unwatch() may drop the original
        }
        guarded(ready);
      }
    }
  }
}

}  // namespace runscope::daemon
