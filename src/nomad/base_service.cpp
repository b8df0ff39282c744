#include "nomad/base_service.hpp"

#include "common/error.hpp"
#include "nomad/cty_msgpack.hpp"
#include "nomad/log.hpp"
#include "nomad/status.hpp"

namespace runscope::nomad {

namespace base = hashicorp::nomad::plugins::base::proto;

grpc::Status BaseService::PluginInfo(grpc::ServerContext*, const base::PluginInfoRequest*,
                                     base::PluginInfoResponse* out) {
  out->set_type(base::DRIVER);
  out->add_plugin_api_versions(kApiVersion);
  out->set_plugin_version(RUNSCOPE_VERSION);
  out->set_name(kDriverName);
  return grpc::Status::OK;
}

grpc::Status BaseService::ConfigSchema(grpc::ServerContext*, const base::ConfigSchemaRequest*,
                                       base::ConfigSchemaResponse* out) {
  *out->mutable_spec() = plugin_config_spec();
  return grpc::Status::OK;
}

grpc::Status BaseService::SetConfig(grpc::ServerContext*, const base::SetConfigRequest* in, base::SetConfigResponse*) {
  return answer([&] {
    if (!in->plugin_api_version().empty() && in->plugin_api_version() != kApiVersion) {
      throw Error(ErrorKind::invalid_argument, "plugin API version " + in->plugin_api_version() +
                                                   " is not the one this plugin speaks (" + kApiVersion + ")");
    }
    PluginConfig config;  // no block at all: the defaults
    if (!in->msgpack_config().empty()) {
      config = parse_plugin_config(decode_cty_msgpack(in->msgpack_config(), "plugin config"));
    }
    state_.configure(config);
    log(LogLevel::info, "configured", {{"bus", config.bus}});
    return grpc::Status::OK;
  });
}

}  // namespace runscope::nomad
