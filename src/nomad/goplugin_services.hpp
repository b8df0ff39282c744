// go-plugin's own services beside the plugin's: GRPCController (Shutdown ends the process
// gracefully), GRPCStdio (the plugin logs to stderr directly, so the stream stays open and
// empty), GRPCBroker (the driver protocol opens no sub-connections: the stream is held, unused).
#pragma once

#include "goplugin/goplugin.grpc.pb.h"
#include "nomad/plugin_state.hpp"

namespace runscope::nomad {

class ControllerService final : public plugin::GRPCController::Service {
 public:
  explicit ControllerService(Lifetime& lifetime) : lifetime_(lifetime) {}
  grpc::Status Shutdown(grpc::ServerContext*, const plugin::Empty*, plugin::Empty*) override;

 private:
  Lifetime& lifetime_;
};

class StdioService final : public plugin::GRPCStdio::Service {
 public:
  explicit StdioService(const Lifetime& lifetime) : lifetime_(lifetime) {}
  grpc::Status StreamStdio(grpc::ServerContext* context, const google::protobuf::Empty*,
                           grpc::ServerWriter<plugin::StdioData>*) override;

 private:
  const Lifetime& lifetime_;
};

class BrokerService final : public plugin::GRPCBroker::Service {
 public:
  explicit BrokerService(const Lifetime& lifetime) : lifetime_(lifetime) {}
  grpc::Status StartStream(grpc::ServerContext* context,
                           grpc::ServerReaderWriter<plugin::ConnInfo, plugin::ConnInfo>* stream) override;

 private:
  const Lifetime& lifetime_;
};

// Waits until the call is cancelled or the plugin stops, checking a few times a second.
void hold_until_done(grpc::ServerContext* context, const Lifetime& lifetime);

}  // namespace runscope::nomad
