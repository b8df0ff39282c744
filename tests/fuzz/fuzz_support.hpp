// What every fuzz target shares: input errors are runscope::Error (the error policy), anything
// else escaping a parser is a bug, and a broken property aborts with the input that broke it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace runscope::fuzz {

[[noreturn]] inline void broken(const char* property, const std::string& detail) {
  std::fprintf(stderr, "fuzz property broken: %s: %s\n", property, detail.c_str());
  std::abort();
}

inline void check(bool ok, const char* property, const std::string& detail = "") {
  if (!ok) broken(property, detail);
}

}  // namespace runscope::fuzz
