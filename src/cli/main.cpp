// runscope: the command-line entry point. It only wires; each subcommand lives in its own file.
#include <cstdio>

int main() {
  std::puts("runscope " RUNSCOPE_VERSION);
  return 0;
}
