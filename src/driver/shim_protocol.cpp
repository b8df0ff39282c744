#include "driver/shim_protocol.hpp"

#include <sys/socket.h>

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::driver {

std::string format_start_failure(const Error& e) {
  std::string kind = std::to_string(static_cast<int>(e.kind()));
  if (e.error_number() != 0) kind += ":" + std::to_string(e.error_number());
  return kind + " " + e.what();
}

Error parse_start_failure(const std::string& text) {
  const auto space = text.find(' ');
  const std::string head = text.substr(0, space);
  const std::string message = space == std::string::npos ? text : text.substr(space + 1);
  const auto colon = head.find(':');
  const std::string kind_text = head.substr(0, colon);
  ErrorKind kind = ErrorKind::system;
  for (auto k : {ErrorKind::invalid_argument, ErrorKind::config, ErrorKind::not_found, ErrorKind::unsupported,
                 ErrorKind::conflict, ErrorKind::resources, ErrorKind::permission, ErrorKind::timeout,
                 ErrorKind::system, ErrorKind::bus}) {
    if (std::to_string(static_cast<int>(k)) == kind_text) kind = k;
  }
  int err = 0;
  if (colon != std::string::npos) {
    const std::string digits = head.substr(colon + 1);
    if (!digits.empty() && digits.size() <= 4 && digits.find_first_not_of("0123456789") == std::string::npos) {
      err = std::stoi(digits);
    }
  }
  return Error(kind, message, err);
}

using json = nlohmann::json;

std::string to_json_text(const ShimLaunch& l) {
  json j = {{"alloc", l.alloc}, {"task", l.task}, {"argv", l.argv}, {"env", l.env}, {"cwd", l.cwd},
            {"journal", l.journal}, {"max_size", l.max_size}, {"max_files", l.max_files}};
  if (l.journal_socket != kJournalSocket) j["journal_socket"] = l.journal_socket;
  if (l.credentials) {
    j["uid"] = l.credentials->uid;
    j["gid"] = l.credentials->gid;
    j["groups"] = l.credentials->groups;
  }
  return j.dump();
}

ShimLaunch parse_shim_launch(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::invalid_argument, std::string(kLaunchFile) + ": not a JSON object");
  try {
    ShimLaunch l;
    l.alloc = j.at("alloc").get<std::string>();
    l.task = j.at("task").get<std::string>();
    l.argv = j.at("argv").get<std::vector<std::string>>();
    l.env = j.at("env").get<std::vector<std::string>>();
    l.cwd = j.at("cwd").get<std::string>();
    l.journal = j.at("journal").get<bool>();
    l.max_size = j.at("max_size").get<std::uint64_t>();
    l.max_files = j.at("max_files").get<unsigned>();
    if (j.contains("journal_socket")) l.journal_socket = j["journal_socket"].get<std::string>();
    if (j.contains("uid")) {
      l.credentials = Credentials{j["uid"].get<uid_t>(), j["gid"].get<gid_t>(), j["groups"].get<std::vector<gid_t>>()};
    }
    if (l.argv.empty()) throw Error(ErrorKind::invalid_argument, std::string(kLaunchFile) + ": argv is empty");
    return l;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::invalid_argument, std::string(kLaunchFile) + ": " + e.what());
  }
}

void write_exit_record(const std::filesystem::path& dir, const ExitRecord& r) {
  json j = {{"pid", r.pid}, {"finished_at", format_time(r.finished_at)}};
  if (r.status.signaled) j["signal"] = r.status.value;
  else j["exit_code"] = r.status.value;
  write_file_atomic(dir / kExitFile, j.dump() + "\n", 0600);
}

std::optional<ExitRecord> read_exit_record(const std::filesystem::path& dir) {
  auto text = read_file_if_exists(dir / kExitFile);
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, false);
  std::string where = (dir / kExitFile).string();
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::invalid_argument, where + ": not a JSON object");
  try {
    ExitRecord r;
    r.pid = j.at("pid").get<pid_t>();
    r.finished_at = parse_time(j.at("finished_at").get<std::string>());
    if (j.contains("signal")) r.status = ExitStatus{true, j["signal"].get<int>()};
    else r.status = ExitStatus{false, j.at("exit_code").get<int>()};
    return r;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::invalid_argument, where + ": " + e.what());
  }
}

void send_message(int fd, const std::string& message) {
  if (::send(fd, message.data(), message.size(), MSG_NOSIGNAL) < 0) throw_system_error("send to the shim channel");
}

std::optional<std::string> receive_message(int fd) {
  std::string buf(kMaxShimMessage, '\0');
  ssize_t n;
  do {
    n = ::recv(fd, buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) return std::nullopt;
    throw_system_error("receive from the shim channel");
  }
  if (n == 0) return std::nullopt;
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

std::optional<std::uint64_t> process_start_time(pid_t pid, const std::filesystem::path& proc_root) {
  auto stat = read_file_if_exists(proc_root / std::to_string(pid) / "stat");
  if (!stat) return std::nullopt;
  // comm (field 2) may hold spaces and ')': fields resume after the last ')'.
  auto close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::size_t pos = close + 2;
  for (int field = 3; field < 22; ++field) {
    pos = stat->find(' ', pos);
    if (pos == std::string::npos) return std::nullopt;
    ++pos;
  }
  return std::stoull(stat->substr(pos, stat->find(' ', pos) - pos));
}

std::string format_time(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::chrono::system_clock::time_point parse_time(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &millis) != 7) {
    throw Error(ErrorKind::invalid_argument, "time '" + text + "' is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SS.mmmZ)");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(::timegm(&tm)) + std::chrono::milliseconds(millis);
}

}  // namespace runscope::driver
