// runscope-shim: one per task, started by runscoped; see driver/shim.hpp.
// `runscope-shim --anchor` keeps the systemd supervisors' scope while no shim runs
// (systemd/supervisor_home.hpp): it only waits, ignoring terminal signals, until killed.
#include <signal.h>
#include <unistd.h>

#include <string_view>

#include "driver/shim.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--anchor") {
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE}) ::signal(sig, SIG_IGN);
    for (;;) ::pause();
  }
  return runscope::driver::run_shim(argc, argv);
}
