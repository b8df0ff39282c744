// The Driver service's streams: Fingerprint (sent at once, then on change), TaskStats (at the
// requested interval until the task ends) and TaskEvents (runscoped's state changes of this
// plugin's tasks), plus the two schema/capability answers.
#include <condition_variable>
#include <deque>
#include <mutex>

#include "cgroup/host.hpp"
#include "common/error.hpp"
#include "driver/manager_choice.hpp"
#include "nomad/driver_service.hpp"
#include "nomad/log.hpp"
#include "nomad/status.hpp"

namespace runscope::nomad {
namespace {

namespace structs = hashicorp::nomad::plugins::shared::structs;

constexpr auto kDefaultStatsInterval = std::chrono::seconds(1);
constexpr auto kMinStatsInterval = std::chrono::milliseconds(100);
constexpr auto kStreamTick = std::chrono::milliseconds(200);

void put(proto::FingerprintResponse& out, const std::string& key, const std::string& value) {
  structs::Attribute a;
  a.set_string_val(value);
  (*out.mutable_attributes())[key] = a;
}

// What this host's cgroups are, seen from here (the plugin runs beside runscoped).
void put_host(proto::FingerprintResponse& out) {
  try {
    auto facts = cgroup::probe_attributes(cgroup::probe(driver::detect_layout(), cgroup::own_cgroups()));
    put(out, "unique.cgroups.version", facts["unique.cgroups.version"]);
    put(out, "unique.cgroups.mode", facts["unique.cgroups.mode"]);
  } catch (const std::exception& e) {
    log(LogLevel::warn, "probing the host's cgroups failed", {{"error", e.what()}});
  }
}

proto::FingerprintResponse fingerprint(PluginState& state) {
  proto::FingerprintResponse out;
  put_host(out);
  auto bus = state.config().bus;
  try {
    auto daemon = state.link().daemon;
    auto version = daemon->version();
    auto facts = daemon->fingerprint();
    put(out, "driver.runscope.version", version);
    put(out, "driver.runscope.cgroups.manager", facts["manager"]);
    put(out, "driver.runscope.cpusets", facts["cpusets"]);
    put(out, "driver.runscope.bus", bus);
    out.set_health(proto::FingerprintResponse::HEALTHY);
    out.set_health_description("runscoped " + version + " answers on the " + bus + " bus (cgroups manager " +
                               facts["manager"] + ")");
  } catch (const std::exception& e) {
    out.set_health(proto::FingerprintResponse::UNHEALTHY);
    out.set_health_description(e.what());
  }
  return out;
}

std::string event_message(const api::StateChange& c) {
  if (c.state == "exited") return "Task exited with code " + std::to_string(c.exit_code);
  if (c.oom_killed || c.state == "oom_killed") return "Task was killed: out of memory";
  if (c.state == "killed") return "Task was killed by signal " + std::to_string(c.signal);
  if (c.state == "failed") return "Task failed to run (runscope inspect has the reason)";
  if (c.state == "lost") return "runscope lost the task: its supervisor is gone";
  return "Task is " + c.state;
}

}  // namespace

grpc::Status DriverService::TaskConfigSchema(grpc::ServerContext*, const proto::TaskConfigSchemaRequest*,
                                             proto::TaskConfigSchemaResponse* out) {
  *out->mutable_spec() = task_config_spec();
  return grpc::Status::OK;
}

grpc::Status DriverService::Capabilities(grpc::ServerContext*, const proto::CapabilitiesRequest*,
                                         proto::CapabilitiesResponse* out) {
  auto* caps = out->mutable_capabilities();
  caps->set_send_signals(true);
  bool exec = false;
  try {
    exec = state_.link().daemon->can_enter();
  } catch (const std::exception&) {
  }
  caps->set_exec(exec);
  caps->set_fs_isolation(proto::DriverCapabilities::NONE);
  caps->add_network_isolation_modes(proto::NetworkIsolationSpec::HOST);
  caps->set_mount_configs(proto::DriverCapabilities::NO_MOUNTS);
  return grpc::Status::OK;
}

grpc::Status DriverService::Fingerprint(grpc::ServerContext* context, const proto::FingerprintRequest*,
                                        grpc::ServerWriter<proto::FingerprintResponse>* writer) {
  return answer([&] {
    std::string last;
    auto next = std::chrono::steady_clock::now();
    while (!abandoned(context)) {
      if (std::chrono::steady_clock::now() >= next) {
        auto fp = fingerprint(state_);
        auto text = fp.SerializeAsString();
        if (text != last) {  // maps serialise in key order: equal text, equal fingerprint
          if (!writer->Write(fp)) break;
          last = std::move(text);
        }
        next = std::chrono::steady_clock::now() + state_.config().fingerprint_period;
      }
      lifetime_.wait_for(kStreamTick);
    }
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::TaskStats(grpc::ServerContext* context, const proto::TaskStatsRequest* in,
                                      grpc::ServerWriter<proto::TaskStatsResponse>* writer) {
  return answer(
      [&] {
        auto record = tasks_.get(in->task_id());
        auto interval = std::chrono::nanoseconds(to_duration(in->collection_interval()));
        if (interval.count() <= 0) interval = kDefaultStatsInterval;
        interval = std::max<std::chrono::nanoseconds>(interval, kMinStatsInterval);
        auto link = state_.link();
        auto view = task_view(link.daemon->inspect(record.id));
        auto lifetime = view.started_at ? std::chrono::system_clock::now() - *view.started_at : std::chrono::nanoseconds(0);
        std::optional<StatsSample> before;
        while (!abandoned(context)) {
          StatsSample now;
          try {
            now = {link.daemon->stats(record.id), std::chrono::steady_clock::now()};
          } catch (const Error& e) {
            if (e.kind() == ErrorKind::conflict || e.kind() == ErrorKind::not_found) break;  // it ended
            throw;
          }
          proto::TaskStatsResponse out;
          auto* stats = out.mutable_stats();
          stats->set_id(in->task_id());
          set_timestamp(*stats->mutable_timestamp(), std::chrono::system_clock::now());
          *stats->mutable_agg_resource_usage() = resource_usage(now, before, lifetime);
          if (!writer->Write(out)) break;
          before = std::move(now);
          auto until = std::chrono::steady_clock::now() + interval;
          while (!abandoned(context) && std::chrono::steady_clock::now() < until) {
            lifetime_.wait_for(std::min<std::chrono::nanoseconds>(kStreamTick, until - std::chrono::steady_clock::now()));
          }
        }
        return grpc::Status::OK;
      },
      true);
}

grpc::Status DriverService::TaskEvents(grpc::ServerContext* context, const proto::TaskEventsRequest*,
                                       grpc::ServerWriter<proto::DriverTaskEvent>* writer) {
  return answer([&] {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<api::StateChange> queue;
    auto sub = state_.link().feed->subscribe([&](const api::StateChange& c) {
      std::lock_guard lock(mutex);
      if (queue.size() < 10000) queue.push_back(c);  // a stalled reader can't grow it without bound
      cv.notify_all();
    });
    while (!abandoned(context)) {
      std::unique_lock lock(mutex);
      cv.wait_for(lock, kStreamTick, [&] { return !queue.empty(); });
      auto batch = std::exchange(queue, {});
      lock.unlock();
      for (const auto& c : batch) {
        std::optional<std::string> task_id;
        try {
          task_id = tasks_.task_id_of(TaskId(c.alloc, c.task));
        } catch (const Error&) {
        }
        if (!task_id) continue;  // not one of this plugin's tasks
        proto::DriverTaskEvent event;
        event.set_task_id(*task_id);
        event.set_alloc_id(c.alloc);
        event.set_task_name(c.task);  // runscope's task name is Nomad's
        set_timestamp(*event.mutable_timestamp(), std::chrono::system_clock::now());
        event.set_message(event_message(c));
        auto& notes = *event.mutable_annotations();
        notes["runscope.state"] = c.state;
        if (c.exit_code >= 0) notes["exit_code"] = std::to_string(c.exit_code);
        if (c.signal > 0) notes["signal"] = std::to_string(c.signal);
        if (c.oom_killed) notes["oom_killed"] = "true";
        if (!writer->Write(event)) return grpc::Status::OK;
      }
    }
    return grpc::Status::OK;
  });
}

}  // namespace runscope::nomad
