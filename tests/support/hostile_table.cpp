#include "support/hostile_table.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/file.hpp"

namespace runscope::testing {
namespace {

constexpr const char* kTable = RUNSCOPE_SOURCE_DIR "/tests/data/hostile_inputs.tsv";

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  throw std::invalid_argument(std::string("bad hex digit '") + c + "' in hostile_inputs.tsv");
}

std::string spec_with(const nlohmann::json& extra) {
  nlohmann::json spec{{"task", "t"}, {"config", {{"command", "/bin/true"}}}};
  spec.update(extra);
  return spec.dump();
}

std::string binary_bytes() {
  std::string out = std::string("\0\xff\xfe", 3);
  std::uint32_t x = 2463534242u;  // xorshift: the same "random" file every run
  while (out.size() < 4096) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    out += static_cast<char>(x & 0xff);
  }
  return out;
}

std::string padded_toml(const std::string& head, std::size_t total) {
  std::string out = head;
  const std::string line = "# " + std::string(98, 'x') + "\n";
  while (out.size() < total) out += line;
  return out;
}

}  // namespace

std::string HostileCase::where() const {
  return "hostile_inputs.tsv:" + std::to_string(line) + " (" + layer + ": " + name + ")";
}

std::string unescape_cell(const std::string& cell) {
  std::string out;
  for (std::size_t i = 0; i < cell.size(); ++i) {
    if (cell[i] != '\\' || i + 1 == cell.size()) {
      out += cell[i];
      continue;
    }
    char c = cell[++i];
    if (c == 'n') out += '\n';
    else if (c == 't') out += '\t';
    else if (c == '0') out += '\0';
    else if (c == '\\') out += '\\';
    else if (c == 'x' && i + 2 < cell.size()) {
      out += static_cast<char>(hex_digit(cell[i + 1]) * 16 + hex_digit(cell[i + 2]));
      i += 2;
    } else {
      out += '\\';
      out += c;
    }
  }
  return out;
}

std::vector<HostileCase> hostile_cases(const std::string& layer) {
  std::ifstream in(kTable);
  if (!in) throw std::runtime_error(std::string("cannot read ") + kTable);
  std::vector<HostileCase> out;
  std::string row;
  for (int line = 1; std::getline(in, row); ++line) {
    if (row.empty() || row[0] == '#') continue;
    auto cells = split(row, '\t');
    if (cells.size() != 5) throw std::runtime_error(std::string(kTable) + ":" + std::to_string(line) + ": not 5 cells");
    if (cells[0] != layer) continue;
    HostileCase c{line, cells[0], cells[1], cells[2], cells[3], cells[4] == "-" ? "" : unescape_cell(cells[4])};
    if (layer != "cli") {
      c.input = c.input.rfind("gen:", 0) == 0 ? hostile_generated(c.input.substr(4)) : unescape_cell(c.input);
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::string hostile_generated(const std::string& name) {
  if (name == "empty") return "";
  if (name == "binary") return binary_bytes();
  if (name == "10mb_config") return padded_toml("[daemon]\nlog_level = \"info\"\n", 10u << 20);
  if (name == "10mb_task_file") return padded_toml("task = \"t\"\n[config]\ncommand = \"/bin/true\"\n", 10u << 20);
  if (name == "task_file") return "task = \"t\"\n[config]\ncommand = \"/bin/true\"\n";
  if (name == "spec_task_300") return spec_with({{"task", std::string(300, 'n')}});
  if (name == "spec_names_250_250") return spec_with({{"alloc", std::string(200, 'a')}, {"task", std::string(200, 't')}});
  if (name == "spec_100k_args")
    return spec_with({{"config", {{"command", "/bin/true"}, {"args", std::vector<std::string>(100000, "a")}}}});
  if (name == "spec_2mb_env" || name == "spec_10mb_env") {
    std::size_t count = name == "spec_2mb_env" ? 2048 : 10240;
    nlohmann::json env = nlohmann::json::object();
    for (std::size_t i = 0; i < count; ++i) env["V" + std::to_string(i)] = std::string(1024, 'v');
    return spec_with({{"env", env}});
  }
  if (name == "spec_deep_nesting") {
    std::string deep = std::string(100000, '[') + std::string(100000, ']');
    return R"({"task":"t","config":{"command":"/bin/true","args":)" + deep + "}}";
  }
  if (name == "name_300") return std::string(300, 'n');
  throw std::invalid_argument("hostile_inputs.tsv: unknown generator \"" + name + "\"");
}

std::vector<std::string> hostile_cli_args(const std::string& line, const std::string& bus,
                                          const std::filesystem::path& dir) {
  std::vector<std::string> args;
  if (line.empty()) return args;
  for (const auto& word : split(line, ' ')) {
    if (word == "{args:100k}") {
      args.insert(args.end(), 100000, "a");
      continue;
    }
    if (word.rfind("{args:", 0) == 0) {
      args.push_back(hostile_generated(word.substr(6, word.size() - 7)));
      continue;
    }
    std::string arg = unescape_cell(word);
    for (std::string key : {"{bus}", "{dir}"}) {
      for (auto at = arg.find(key); at != std::string::npos; at = arg.find(key)) {
        arg.replace(at, key.size(), key == "{bus}" ? bus : dir.string());
      }
    }
    if (arg.rfind("{file:", 0) == 0) {
      std::string gen = arg.substr(6, arg.size() - 7);
      auto path = dir / gen;
      if (!std::filesystem::exists(path)) std::ofstream(path, std::ios::binary) << hostile_generated(gen);
      arg = path.string();
    }
    args.push_back(arg);
  }
  return args;
}

}  // namespace runscope::testing
