#include "nomad/goplugin_services.hpp"

#include "nomad/log.hpp"

namespace runscope::nomad {

void hold_until_done(grpc::ServerContext* context, const Lifetime& lifetime) {
  while (!context->IsCancelled() && !lifetime.wait_for(std::chrono::milliseconds(200))) {
  }
}

grpc::Status ControllerService::Shutdown(grpc::ServerContext*, const plugin::Empty*, plugin::Empty*) {
  log(LogLevel::info, "shutdown requested by the agent");
  lifetime_.request_stop();  // main() stops the server once this answer is out
  return grpc::Status::OK;
}

grpc::Status StdioService::StreamStdio(grpc::ServerContext* context, const google::protobuf::Empty*,
                                       grpc::ServerWriter<plugin::StdioData>*) {
  hold_until_done(context, lifetime_);
  return grpc::Status::OK;
}

grpc::Status BrokerService::StartStream(grpc::ServerContext* context,
                                        grpc::ServerReaderWriter<plugin::ConnInfo, plugin::ConnInfo>* stream) {
  // Read() blocks until the client sends or closes; a server shutdown cancels it.
  plugin::ConnInfo info;
  while (!lifetime_.stopping() && stream->Read(&info)) {
    log(LogLevel::debug, "broker connection offered, unused", {{"address", info.address()}});
  }
  (void)context;
  return grpc::Status::OK;
}

}  // namespace runscope::nomad
