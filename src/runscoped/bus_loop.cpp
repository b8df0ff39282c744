#include "runscoped/bus_loop.hpp"

#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "common/error.hpp"
#include "compat/sdbus.hpp"

namespace runscope::runscoped {
namespace {

using Steady = std::chrono::steady_clock;

int millis_until(Steady::time_point when) {
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - Steady::now()).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
}

}  // namespace

Outbox::Outbox() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!wake_) throw_system_error("eventfd for the bus loop's outbox");
}

void Outbox::post(std::function<void()> work) {
  {
    std::lock_guard lock(mutex_);
    if (!closed_) {
      queue_.push_back(std::move(work));
      std::uint64_t one = 1;
      (void)!::write(wake_.get(), &one, sizeof one);
      return;
    }
  }
  work();
}

std::function<void(std::function<void()>)> Outbox::poster() {
  return [self = shared_from_this()](std::function<void()> work) { self->post(std::move(work)); };
}

void Outbox::run_queued() noexcept {
  std::uint64_t count;
  (void)!::read(wake_.get(), &count, sizeof count);
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(queue_);
  }
  for (auto& w : work) {
    try {
      w();
    } catch (...) {
      // A reply that can't be sent concerns only its caller, who is gone.
    }
  }
}

void Outbox::close() noexcept {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  run_queued();
}

BusLoop::BusLoop(sdbus::IConnection& connection, BusLoopOptions options)
    : connection_(connection),
      options_(std::move(options)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      ended_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!wake_ || !ended_) throw_system_error("eventfd for the bus loop");
  thread_ = std::thread([this] { run(); });
}

BusLoop::~BusLoop() {
  {
    std::lock_guard lock(mutex_);
    leaving_ = true;
  }
  std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  thread_.join();
  if (options_.outbox) options_.outbox->close();
}

std::string BusLoop::why() const {
  std::lock_guard lock(mutex_);
  return why_;
}

void BusLoop::run() noexcept {
  try {
    serve();
  } catch (const sdbus::Error& e) {
    std::lock_guard lock(mutex_);
    why_ = e.getName() + ": " + e.getMessage();
  } catch (const std::exception& e) {
    std::lock_guard lock(mutex_);
    why_ = e.what();
  }
  std::uint64_t one = 1;
  (void)!::write(ended_.get(), &one, sizeof one);
}

void BusLoop::serve() {
  const auto period = options_.watchdog ? std::chrono::duration_cast<Steady::duration>(*options_.watchdog)
                                        : Steady::duration::max();
  auto next_ping = Steady::now();
  auto ping_if_due = [&] {
    if (!options_.watchdog || Steady::now() < next_ping) return;
    options_.ping();
    next_ping = Steady::now() + period;
  };
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (leaving_) return;
    }
    // Handlers never wait for a task operation, so each returns quickly; between two messages the
    // loop sends the replies that are ready and pings.
    auto between = [&] {
      if (options_.outbox) options_.outbox->run_queued();
      ping_if_due();
    };
    while (compat::process_pending(connection_)) between();
    between();
    auto polled = compat::poll_set(connection_);
    std::array<pollfd, 4> fds{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < polled.count; ++i) fds[n++] = polled.fds[i];
    fds[n++] = pollfd{wake_.get(), POLLIN, 0};
    if (options_.outbox) fds[n++] = pollfd{options_.outbox->fd(), POLLIN, 0};
    int timeout = polled.timeout_ms;
    if (options_.watchdog) timeout = timeout < 0 ? millis_until(next_ping) : std::min(timeout, millis_until(next_ping));
    if (::poll(fds.data(), n, timeout) < 0 && errno != EINTR) throw_system_error("poll on the bus");
  }
}

}  // namespace runscope::runscoped
