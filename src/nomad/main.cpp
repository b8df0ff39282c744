// runscope-nomad-driver: a Nomad task driver plugin that runs every task through runscoped on
// this host (docs/nomad.md). Nomad's agent starts it; run by hand it explains and exits 1.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "nomad/server.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("runscope-nomad-driver %s (Nomad plugin API 0.1.0, driver \"runscope\")\n", RUNSCOPE_VERSION);
    return 0;
  }
  if (argc > 1) {
    std::fprintf(stderr, "runscope-nomad-driver: takes no arguments (besides --version); got %s\n", argv[1]);
    return 2;
  }
  if (auto why = runscope::nomad::launch_refusal([](const char* name) -> const char* { return std::getenv(name); })) {
    std::fprintf(stderr, "%s\n", why->c_str());
    return 1;
  }
  try {
    return runscope::nomad::serve(runscope::nomad::connect_daemon, stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runscope-nomad-driver: %s\n", e.what());
    return 1;
  }
}
