#include "driver/log_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>

#include "common/error.hpp"

namespace runscope::driver {

namespace fs = std::filesystem;

namespace {
constexpr std::size_t kMaxJournalLine = 64 * 1024;  // longer lines are split
}

RotatingFile::RotatingFile(fs::path path, std::uint64_t max_size, unsigned max_files)
    : path_(std::move(path)), max_size_(max_size), max_files_(max_files == 0 ? 1 : max_files) {
  open();
}

void RotatingFile::open() {
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd_) throw_system_error("open " + path_.string());
  ::fchmod(fd_.get(), 0600);  // also a file an older version made 0644
  struct stat st {};
  size_ = ::fstat(fd_.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

void RotatingFile::rotate() {
  std::error_code ec;
  // name.(N-1) falls off the end; name.i -> name.(i+1); name -> name.1
  for (unsigned i = max_files_ - 1; i >= 1; --i) {
    fs::path from = i == 1 ? path_ : fs::path(path_.string() + "." + std::to_string(i - 1));
    fs::path to = path_.string() + "." + std::to_string(i);
    fs::rename(from, to, ec);
  }
  if (max_files_ == 1) fs::resize_file(path_, 0, ec);
  open();
}

void RotatingFile::write(std::string_view data) {
  while (!data.empty()) {
    if (size_ >= max_size_) rotate();
    std::size_t room = static_cast<std::size_t>(max_size_ - size_);
    std::string_view part = data.substr(0, room);
    ssize_t n = ::write(fd_.get(), part.data(), part.size());
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // disk full or similar: drop rather than block the task
    }
    size_ += static_cast<std::uint64_t>(n);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

JournalLines::JournalLines(std::string alloc, std::string task, int priority, std::string socket_path)
    : alloc_(std::move(alloc)), task_(std::move(task)), priority_(priority), socket_path_(std::move(socket_path)) {}

// journald's native protocol, spoken directly so the shim needs no libsystemd (and its
// compression and crypto libraries): one datagram of KEY=VALUE lines per entry. No value holds a
// newline: lines are split on it and names can't contain control characters.
void JournalLines::send(std::string_view line) {
  if (!socket_) {
    socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!socket_) return;
  }
  std::string entry = "MESSAGE=" + std::string(line) + "\nPRIORITY=" + std::to_string(priority_) +
                      "\nSYSLOG_IDENTIFIER=" + task_ + "\nRUNSCOPE_ALLOC=" + alloc_ + "\nRUNSCOPE_TASK=" + task_ + "\n";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path_.c_str());
  ::sendto(socket_.get(), entry.data(), entry.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
}

void JournalLines::write(std::string_view data) {
  partial_.append(data);
  std::size_t start = 0;
  for (std::size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    send(std::string_view(partial_).substr(start, nl - start));
  }
  partial_.erase(0, start);
  while (partial_.size() >= kMaxJournalLine) {
    send(std::string_view(partial_).substr(0, kMaxJournalLine));
    partial_.erase(0, kMaxJournalLine);
  }
}

void JournalLines::flush() {
  if (!partial_.empty()) send(partial_);
  partial_.clear();
}

}  // namespace runscope::driver
