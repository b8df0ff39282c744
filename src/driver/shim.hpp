// The per-task supervisor's logic (runscope-shim's main): start the task confined, pump its
// output, wait for it, record how it ended. See driver/shim_protocol.hpp for the protocol and
// docs/daemon.md for why it exists.
#pragma once

namespace runscope::driver {

// runscope-shim TASK_DIR CONTROL_FD [CGROUP_FD]. Returns the shim's exit code: 0 when the task
// ran (whatever its own exit status, which goes to exit.json), 1 when it could not be started.
int run_shim(int argc, char** argv);

}  // namespace runscope::driver
