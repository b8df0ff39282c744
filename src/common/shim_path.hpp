// Where runscope-shim is, for the daemon (which starts one per task) and the systemd backend
// (whose supervisors' scope is kept by `runscope-shim --anchor`).
#pragma once

#include <filesystem>

namespace runscope {

// Beside the running binary (a build tree, the tests), else where the packages install it.
std::filesystem::path shim_binary();

}  // namespace runscope
