// Wiring for the driver: the systemd path built from configuration, and the probe `auto`
// manager selection and `runscope fingerprint` use.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "systemd/scope_backend.hpp"

namespace runscope::systemd {

// A SystemdBackend that owns its SdbusSystemdManager (one bus connection), with the slice from
// cgroups.parent (default runscope.slice), the job deadline from cgroups.systemd_timeout, and the
// supervisors' scope kept by `runscope-shim --anchor` (common/shim_path.hpp).
// `bus_address` empty: the system bus. Throws BusError when systemd does not answer on it.
std::unique_ptr<SystemdBackend> make_systemd_backend(const config::CgroupsConfig& cgroups,
                                                     const std::string& bus_address = {});

// systemd's version when the bus answers as systemd (within `timeout`), else nullopt. Never throws.
std::optional<std::string> probe_systemd_version(const std::string& bus_address = {},
                                                 std::chrono::nanoseconds timeout = std::chrono::seconds(2));

}  // namespace runscope::systemd
