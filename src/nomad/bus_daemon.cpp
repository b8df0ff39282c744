// runscoped over D-Bus. A bus connection is not thread-safe and gRPC calls arrive on many
// threads, so each call borrows a connection from a small pool (a StopTask that waits out a kill
// timeout never holds up a Fingerprint). One more connection, on its own thread, receives
// TaskStateChanged for the feed and reconnects when the bus or the daemon goes away.
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>

#include "common/error.hpp"
#include "nomad/daemon.hpp"
#include "nomad/log.hpp"

namespace runscope::nomad {
namespace {

constexpr std::size_t kIdleConnections = 4;
constexpr auto kPumpBudget = std::chrono::milliseconds(200);
constexpr auto kFeedCheckPeriod = std::chrono::seconds(5);
constexpr auto kReconnectDelay = std::chrono::seconds(1);

bool connection_suspect(ErrorKind kind) {
  return kind == ErrorKind::bus || kind == ErrorKind::unsupported || kind == ErrorKind::timeout;
}

class ClientPool {
 public:
  explicit ClientPool(std::string bus) : bus_(std::move(bus)), absent_(api::daemon_missing_hint(bus_)) {}

  template <typename Body>
  auto with(Body body) {
    auto client = take();
    try {
      if constexpr (std::is_void_v<decltype(body(*client))>) {
        body(*client);
        give(std::move(client));
      } else {
        auto result = body(*client);
        give(std::move(client));
        return result;
      }
    } catch (const Error& e) {
      // The daemon's own answers leave the connection good; anything about the bus drops it.
      if (!connection_suspect(e.kind())) give(std::move(client));
      // A daemon that is not running is worth retrying; a host that lacks something is not.
      if (e.kind() == ErrorKind::unsupported && std::string_view(e.what()).starts_with(absent_)) {
        throw Error(ErrorKind::bus, e.what());
      }
      throw;
    } catch (const std::exception& e) {
      throw Error(ErrorKind::bus, std::string("D-Bus: ") + e.what());
    }
  }

 private:
  std::unique_ptr<api::ManagerClient> take() {
    try {
      return take_or_connect();
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::unsupported) throw Error(ErrorKind::bus, e.what());  // no bus at all
      throw;
    }
  }
  std::unique_ptr<api::ManagerClient> take_or_connect() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    return std::make_unique<api::ManagerClient>(bus_);  // throws Error(unsupported) with the hint
  }
  void give(std::unique_ptr<api::ManagerClient> client) {
    std::lock_guard lock(mutex_);
    if (idle_.size() < kIdleConnections) idle_.push_back(std::move(client));
  }

  std::string bus_;
  std::string absent_;  // how ManagerClient says the daemon is not there
  std::mutex mutex_;
  std::vector<std::unique_ptr<api::ManagerClient>> idle_;
};

class BusDaemon final : public Daemon {
 public:
  explicit BusDaemon(const std::string& bus) : pool_(bus) {}
  TaskId start(const std::string& spec) override {
    return pool_.with([&](api::ManagerClient& c) { return c.start(spec); });
  }
  void stop(const TaskId& id, std::optional<Duration> timeout) override {
    pool_.with([&](api::ManagerClient& c) { c.stop(id, timeout); });
  }
  void signal(const TaskId& id, int sig) override {
    pool_.with([&](api::ManagerClient& c) { c.signal(id, sig); });
  }
  void destroy(const TaskId& id) override {
    pool_.with([&](api::ManagerClient& c) { c.destroy(id); });
  }
  nlohmann::json inspect(const TaskId& id) override {
    return pool_.with([&](api::ManagerClient& c) { return c.inspect(id); });
  }
  std::map<std::string, std::uint64_t> stats(const TaskId& id) override {
    return pool_.with([&](api::ManagerClient& c) { return c.stats(id); });
  }
  std::map<std::string, std::string> fingerprint() override {
    return pool_.with([&](api::ManagerClient& c) { return c.fingerprint(); });
  }
  std::string version() override {
    return pool_.with([&](api::ManagerClient& c) { return c.version(); });
  }
  // Asked each time (Capabilities is rare): a runscoped upgraded or downgraded under the plugin
  // is seen at once. No answer means no exec.
  bool can_enter() const override {
    try {
      return pool_.with([&](api::ManagerClient& c) { return c.can_enter(); });
    } catch (const std::exception&) {
      return false;
    }
  }
  // The connection is the command's for as long as it runs (EnterTask answers at its end); the
  // pool makes another for the calls meanwhile.
  int enter(const TaskId& id, const EnterSpec& spec, int in, int out, int err) override {
    return pool_.with([&](api::ManagerClient& c) {
      try {
        return c.enter(id, spec, in, out, err);
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::bus && std::string_view(e.what()).find("UnknownMethod") != std::string_view::npos) {
          throw Error(ErrorKind::unsupported, id.display() + ": " + kExecNeedsEnterTask);
        }
        throw;
      }
    });
  }

 private:
  mutable ClientPool pool_;
};

class BusFeed final : public StateFeed {
 public:
  explicit BusFeed(std::string bus) : bus_(std::move(bus)), thread_([this] { run(); }) {}
  ~BusFeed() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  std::unique_ptr<Subscription> subscribe(Callback callback) override {
    std::lock_guard lock(mutex_);
    auto key = ++next_key_;
    callbacks_[key] = std::move(callback);
    return std::make_unique<Subscription>(*this, key);
  }

 protected:
  void unsubscribe(std::uint64_t key) override {
    std::lock_guard lock(mutex_);
    callbacks_.erase(key);  // under the lock: once this returns, the callback never runs again
  }

 private:
  bool stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }
  void dispatch(const api::StateChange& change) {
    std::lock_guard lock(mutex_);
    for (auto& [key, callback] : callbacks_) callback(change);
  }
  void listen() {
    api::ManagerClient client(bus_);
    client.watch([this](const api::StateChange& c) { dispatch(c); });
    auto checked = std::chrono::steady_clock::now();
    while (!stopping()) {
      client.pump(kPumpBudget);
      if (std::chrono::steady_clock::now() - checked > kFeedCheckPeriod) {
        client.version();  // a dead connection or a vanished daemon shows here: reconnect
        checked = std::chrono::steady_clock::now();
      }
    }
  }
  void run() {
    while (!stopping()) {
      try {
        listen();
      } catch (const std::exception& e) {
        log(LogLevel::debug, "state feed reconnecting", {{"bus", bus_}, {"error", e.what()}});
      }
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kReconnectDelay, [this] { return stopping_; });
    }
  }

  std::string bus_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::uint64_t next_key_ = 0;
  std::map<std::uint64_t, Callback> callbacks_;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace

DaemonLink connect_daemon(const std::string& bus) {
  return {std::make_shared<BusDaemon>(bus), std::make_shared<BusFeed>(bus)};
}

}  // namespace runscope::nomad
