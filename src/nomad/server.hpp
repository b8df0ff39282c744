// The plugin process: checks the launch environment Nomad gives it, serves every service on a
// unix socket in a private folder, prints go-plugin's handshake line, and runs until Shutdown or
// SIGTERM.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "nomad/plugin_state.hpp"

namespace runscope::nomad {

inline constexpr const char* kCookieKey = "NOMAD_PLUGIN_MAGIC_COOKIE";
inline constexpr const char* kCookieValue = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255";
inline constexpr int kCoreProtocol = 1;  // go-plugin's
inline constexpr int kAppProtocol = 2;   // Nomad's plugin protocol version

// Why this environment can't run the plugin (no cookie, no common protocol version, AutoMTLS
// asked for), or nullopt. `getenv` is a seam for tests.
std::optional<std::string> launch_refusal(const char* (*getenv)(const char*));

// The handshake line for a unix socket: "1|2|unix|PATH|grpc|".
std::string handshake_line(const std::string& socket_path);

// Serves until Shutdown or SIGTERM; 0 on a clean stop. Prints the handshake to `out`.
int serve(PluginState::Connect connect, std::FILE* out);

}  // namespace runscope::nomad
