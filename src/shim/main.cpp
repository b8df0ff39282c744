// runscope-shim: one per task, started by runscoped; see driver/shim.hpp.
#include "driver/shim.hpp"

int main(int argc, char** argv) { return runscope::driver::run_shim(argc, argv); }
