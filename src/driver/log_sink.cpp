#include "driver/log_sink.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <cstdio>

#include "common/error.hpp"

namespace runscope::driver {

namespace fs = std::filesystem;

namespace {
constexpr std::size_t kMaxJournalLine = 64 * 1024;  // longer lines are split
constexpr std::size_t kPumpChunk = 64 * 1024;
constexpr int kDrainRounds = 64;  // after the task ends, what is already buffered, no more
constexpr long kSentPollNanos = 1'000'000;

// Reads what is there into the sink; false at EOF or error.
bool pump(LogStream& s) {
  char buf[kPumpChunk];
  ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  s.sink->write(std::string_view(buf, static_cast<std::size_t>(n)));
  return true;
}

void drain(LogStream& s) {
  ::fcntl(s.fd.get(), F_SETFL, O_NONBLOCK);
  for (int i = 0; i < kDrainRounds; ++i) {
    char buf[kPumpChunk];
    ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    s.sink->write(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  s.sink->flush();
}
}  // namespace

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
                      "\nSYSLOG_IDENTIFIER=" + kJournalIdentifierPrefix + task_ + "\nRUNSCOPE_ALLOC=" + alloc_ +
                      "\nRUNSCOPE_TASK=" + task_ + "\n";
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

// The kernel gives no event for "the receiver took everything": a short poll of the queue
// length, bounded by `limit`.
void JournalLines::wait_sent(std::chrono::milliseconds limit) const {
  if (!socket_) return;
  const timespec step{0, kSentPollNanos};
  for (auto waited = std::chrono::milliseconds::zero(); waited < limit; waited += std::chrono::milliseconds(1)) {
    int queued = 0;
    if (::ioctl(socket_.get(), SIOCOUTQ, &queued) != 0 || queued <= 0) return;
    ::nanosleep(&step, nullptr);
  }
}

std::map<std::string, std::string> journal_match(const std::string& alloc, const std::string& task, unsigned uid) {
  return {{"RUNSCOPE_ALLOC", alloc}, {"RUNSCOPE_TASK", task}, {"_UID", std::to_string(uid)}};
}

void pump_until(int ended_fd, LogStream& out, LogStream& err) {
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[3] = {{ended_fd, POLLIN, 0}, {out_open ? out.fd.get() : -1, POLLIN, 0},
                     {err_open ? err.fd.get() : -1, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) out_open = pump(out);
    if (fds[2].revents) err_open = pump(err);
    if (fds[0].revents) break;
  }
  // The task is gone; take what it left in the pipes without waiting for children holding them.
  for (LogStream* s : {&out, &err}) drain(*s);
}

}  // namespace runscope::driver
