#include "systemd/factory.hpp"

#include "common/shim_path.hpp"
#include "systemd/properties.hpp"
#include "systemd/sdbus_manager.hpp"

namespace runscope::systemd {

std::unique_ptr<SystemdBackend> make_systemd_backend(const config::CgroupsConfig& cgroups,
                                                     const std::string& bus_address) {
  SdbusManagerOptions manager_options;
  manager_options.address = bus_address;
  manager_options.timeout = cgroups.systemd_timeout;
  SystemdBackendOptions backend_options;
  backend_options.parent_slice = cgroups.parent.value_or(kDefaultSlice);
  backend_options.supervisor_anchor = {shim_binary().string(), "--anchor"};
  return std::make_unique<SystemdBackend>(std::make_unique<SdbusSystemdManager>(manager_options),
                                          std::move(backend_options));
}

std::optional<std::string> probe_systemd_version(const std::string& bus_address, std::chrono::nanoseconds timeout) {
  try {
    SdbusManagerOptions options;
    options.address = bus_address;
    options.timeout = timeout;
    return SdbusSystemdManager(options).version();
  } catch (const std::exception&) {
    return std::nullopt;  // no bus, or no systemd on it
  }
}

}  // namespace runscope::systemd
