// tests/data/hostile_inputs.tsv, read: one Case per row, escapes decoded, generators run. The
// unit and host walkers share it, so the table is the one list of hostile inputs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace runscope::testing {

struct HostileCase {
  int line = 0;         // in the .tsv, for failure messages
  std::string layer;    // config, spec, toml, daemon, cli
  std::string name;     // what is hostile about it
  std::string input;    // decoded text, or the raw cli argument line
  std::string expect;   // "ok", a D-Bus error short name, or an exit code (cli)
  std::string message;  // decoded substring; empty: nothing to check
  std::string where() const;  // "hostile_inputs.tsv:LINE (NAME)"
};

// All rows of `layer`, in table order.
std::vector<HostileCase> hostile_cases(const std::string& layer);

// `\n \t \\ \0 \xNN` decoded.
std::string unescape_cell(const std::string& cell);

// The text of a `gen:NAME` input (or of {file:NAME}); throws on an unknown name.
std::string hostile_generated(const std::string& name);

// The argv of a cli row: split at spaces, each word unescaped, {bus} {dir} {file:G} {args:G}
// substituted ({file:G} writes G's text to DIR/G once).
std::vector<std::string> hostile_cli_args(const std::string& line, const std::string& bus,
                                          const std::filesystem::path& dir);

}  // namespace runscope::testing
