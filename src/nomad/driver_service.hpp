// hashicorp.nomad.plugins.drivers.proto.Driver: Nomad's task driver API, served by asking
// runscoped (docs/nomad.md maps every call). Lifecycle calls are in driver_tasks.cpp, the
// streams (Fingerprint, TaskStats, TaskEvents) in driver_streams.cpp, exec in driver_exec.cpp.
#pragma once

#include <optional>

#include "nomad/drivers.grpc.pb.h"
#include "nomad/mapping.hpp"
#include "nomad/plugin_state.hpp"

namespace runscope::nomad {

class DriverService final : public proto::Driver::Service {
 public:
  DriverService(PluginState& state, const Lifetime& lifetime) : state_(state), lifetime_(lifetime) {}

  grpc::Status TaskConfigSchema(grpc::ServerContext*, const proto::TaskConfigSchemaRequest*,
                                proto::TaskConfigSchemaResponse* out) override;
  grpc::Status Capabilities(grpc::ServerContext*, const proto::CapabilitiesRequest*,
                            proto::CapabilitiesResponse* out) override;
  grpc::Status Fingerprint(grpc::ServerContext* context, const proto::FingerprintRequest*,
                           grpc::ServerWriter<proto::FingerprintResponse>* writer) override;
  grpc::Status RecoverTask(grpc::ServerContext*, const proto::RecoverTaskRequest* in,
                           proto::RecoverTaskResponse*) override;
  grpc::Status StartTask(grpc::ServerContext*, const proto::StartTaskRequest* in,
                         proto::StartTaskResponse* out) override;
  grpc::Status WaitTask(grpc::ServerContext* context, const proto::WaitTaskRequest* in,
                        proto::WaitTaskResponse* out) override;
  grpc::Status StopTask(grpc::ServerContext* context, const proto::StopTaskRequest* in,
                        proto::StopTaskResponse*) override;
  grpc::Status DestroyTask(grpc::ServerContext*, const proto::DestroyTaskRequest* in,
                           proto::DestroyTaskResponse*) override;
  grpc::Status InspectTask(grpc::ServerContext*, const proto::InspectTaskRequest* in,
                           proto::InspectTaskResponse* out) override;
  grpc::Status TaskStats(grpc::ServerContext* context, const proto::TaskStatsRequest* in,
                         grpc::ServerWriter<proto::TaskStatsResponse>* writer) override;
  grpc::Status TaskEvents(grpc::ServerContext* context, const proto::TaskEventsRequest*,
                          grpc::ServerWriter<proto::DriverTaskEvent>* writer) override;
  grpc::Status SignalTask(grpc::ServerContext*, const proto::SignalTaskRequest* in,
                          proto::SignalTaskResponse*) override;
  grpc::Status ExecTask(grpc::ServerContext* context, const proto::ExecTaskRequest* in,
                        proto::ExecTaskResponse* out) override;
  grpc::Status ExecTaskStreaming(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<proto::ExecTaskStreamingResponse, proto::ExecTaskStreamingRequest>* stream) override;
  grpc::Status CreateNetwork(grpc::ServerContext*, const proto::CreateNetworkRequest*,
                             proto::CreateNetworkResponse*) override;
  grpc::Status DestroyNetwork(grpc::ServerContext*, const proto::DestroyNetworkRequest*,
                              proto::DestroyNetworkResponse*) override;

 private:
  // Until `id` is in a final state (from the feed, re-checked with InspectTask every second in
  // case a signal was missed), `budget` passes, the call is cancelled or the plugin stops.
  std::optional<TaskView> wait_final(const DaemonLink& link, const TaskId& id, std::chrono::nanoseconds budget,
                                     grpc::ServerContext* context);
  // Whether the call should give up: cancelled by the client or the plugin stopping.
  bool abandoned(grpc::ServerContext* context) const;
  // Starts the task; a final task of the same name left by an earlier run is destroyed first.
  TaskId start_in_daemon(const DaemonLink& link, const std::string& task_id, const TaskId& id,
                         const std::string& spec_json);

  PluginState& state_;
  const Lifetime& lifetime_;
  TaskStore tasks_;
};

}  // namespace runscope::nomad
