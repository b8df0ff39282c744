#include "support/bus_flood.hpp"

#include <grp.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "common/error.hpp"

namespace runscope::testing {
namespace {

constexpr std::uint64_t kCallTimeoutUsec = 3600ull * 1000000;  // the once-calls may wait an hour
constexpr std::uint64_t kWaitUsec = 100000;

int on_reply(sd_bus_message*, void* flood, sd_bus_error*) {
  if (flood != nullptr) static_cast<BusFlood*>(flood)->reissue();  // null: a once-call
  return 0;
}

}  // namespace

BusFlood::BusFlood(const std::string& address, std::vector<FloodCall> once, std::vector<FloodCall> repeat,
                   unsigned in_flight)
    : once_(std::move(once)), repeat_(std::move(repeat)), in_flight_(in_flight) {
  int r = sd_bus_new(&bus_);
  if (r >= 0) r = sd_bus_set_address(bus_, address.c_str());
  if (r >= 0) r = sd_bus_set_bus_client(bus_, 1);
  if (r >= 0) r = sd_bus_start(bus_);
  if (r < 0) {
    sd_bus_unref(bus_);
    throw Error(ErrorKind::bus, "flood: cannot connect to " + address + ": " + std::to_string(r));
  }
  thread_ = std::thread([this] { run(); });
}

BusFlood::~BusFlood() {
  stop_ = true;
  thread_.join();
  sd_bus_flush_close_unref(bus_);
}

void BusFlood::issue(const FloodCall& call, bool repeat) {
  sd_bus_message* m = nullptr;
  if (sd_bus_message_new_method_call(bus_, &m, "org.runscope1", "/org/runscope1", "org.runscope1.Manager",
                                     call.member.c_str()) < 0) {
    return;
  }
  for (const auto& s : call.strings) sd_bus_message_append_basic(m, 's', s.c_str());
  if (call.number) sd_bus_message_append_basic(m, 't', &*call.number);
  // Floating slots: freed with their reply. The tag's address encodes whether to re-issue.
  void* userdata = repeat ? static_cast<void*>(this) : nullptr;
  sd_bus_call_async(bus_, nullptr, m, on_reply, userdata, kCallTimeoutUsec);
  sd_bus_message_unref(m);
}

void BusFlood::reissue() {
  ++answered_;
  if (!stop_) issue(repeat_[next_++ % repeat_.size()], true);
}

void BusFlood::run() {
  for (const auto& call : once_) issue(call, false);
  if (!repeat_.empty()) {
    for (unsigned i = 0; i < in_flight_; ++i) issue(repeat_[next_++ % repeat_.size()], true);
  }
  while (!stop_) {
    int r = sd_bus_process(bus_, nullptr);
    if (r < 0) break;  // the connection is gone
    if (r == 0) sd_bus_wait(bus_, kWaitUsec);
  }
}

namespace {

std::string slow_spec(int i) {
  nlohmann::json config{{"command", "/bin/sh"}, {"args", {"-c", "trap '' TERM; while :; do sleep 1; done"}}};
  return nlohmann::json{{"alloc", "hostile"}, {"task", "slow" + std::to_string(i)}, {"config", config},
                        {"kill_timeout", "1h"}, {"log", {{"target", "file"}}}}
      .dump();
}

}  // namespace

void run_hostile_member(const std::string& bus, uid_t uid, int report, int slow_stops) {
  try {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) {
      ::_exit(2);
    }
    api::ManagerClient client(bus);
    std::vector<FloodCall> stops, reads{{"ListTasks", {}, {}}};
    for (int i = 0; i < slow_stops; ++i) {
      auto id = client.start(slow_spec(i));
      stops.push_back({"StopTask", {id.alloc(), id.task()}, 0});
      reads.push_back({"TaskStats", {id.alloc(), id.task()}, {}});
      reads.push_back({"InspectTask", {id.alloc(), id.task()}, {}});
    }
    BusFlood flood(bus, stops, reads, 64);
    (void)!::write(report, "ready\n", 6);
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto line = std::to_string(flood.answered()) + "\n";
      (void)!::write(report, line.data(), line.size());
    }
  } catch (const std::exception& e) {
    auto line = std::string("failed: ") + e.what() + "\n";
    (void)!::write(report, line.data(), line.size());
    ::_exit(3);
  }
}

long read_member_report(int fd, std::string& buffer, bool& ready) {
  char chunk[4096];
  for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) buffer.append(chunk, static_cast<std::size_t>(n));
  ready = ready || buffer.find("ready\n") != std::string::npos;
  auto end = buffer.rfind('\n');
  if (end == std::string::npos || end == 0) return -1;
  auto begin = buffer.rfind('\n', end - 1);
  begin = begin == std::string::npos ? 0 : begin + 1;
  auto line = buffer.substr(begin, end - begin);
  return line.empty() || line[0] < '0' || line[0] > '9' ? -1 : std::stol(line);
}

}  // namespace runscope::testing
