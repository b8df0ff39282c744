// hashicorp.nomad.plugins.base.proto.BasePlugin: who the plugin is (a driver named "runscope",
// API 0.1.0), its config schema, and SetConfig.
#pragma once

#include "nomad/base.grpc.pb.h"
#include "nomad/plugin_state.hpp"

namespace runscope::nomad {

inline constexpr const char* kDriverName = "runscope";
inline constexpr const char* kApiVersion = "0.1.0";

class BaseService final : public hashicorp::nomad::plugins::base::proto::BasePlugin::Service {
 public:
  explicit BaseService(PluginState& state) : state_(state) {}
  grpc::Status PluginInfo(grpc::ServerContext*, const hashicorp::nomad::plugins::base::proto::PluginInfoRequest*,
                          hashicorp::nomad::plugins::base::proto::PluginInfoResponse* out) override;
  grpc::Status ConfigSchema(grpc::ServerContext*, const hashicorp::nomad::plugins::base::proto::ConfigSchemaRequest*,
                            hashicorp::nomad::plugins::base::proto::ConfigSchemaResponse* out) override;
  grpc::Status SetConfig(grpc::ServerContext*, const hashicorp::nomad::plugins::base::proto::SetConfigRequest* in,
                         hashicorp::nomad::plugins::base::proto::SetConfigResponse*) override;

 private:
  PluginState& state_;
};

}  // namespace runscope::nomad
