#include "support/fake_journald.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::testing {

FakeJournald::FakeJournald(std::filesystem::path path) : path_(std::move(path)) {
  socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!socket_) throw_system_error("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
  if (::bind(socket_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw_system_error("bind " + path_.string());
  ::chmod(path_.c_str(), 0666);
  int on = 1;
  if (::setsockopt(socket_.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) throw_system_error("SO_PASSCRED");
}

std::vector<JournalEntry> FakeJournald::receive(std::size_t count, std::chrono::milliseconds budget) {
  std::vector<JournalEntry> out;
  const auto until = std::chrono::steady_clock::now() + budget;
  while (out.size() < count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{socket_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[128 * 1024];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_DONTWAIT);
    if (n <= 0) continue;
    JournalEntry entry;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred{};
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        entry.pid = cred.pid;
        entry.uid = cred.uid;
        entry.gid = cred.gid;
      }
    }
    std::istringstream lines(std::string(buf, static_cast<std::size_t>(n)));
    for (std::string line; std::getline(lines, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos) entry.fields[line.substr(0, eq)] = line.substr(eq + 1);
    }
    entry.sender_cgroup = read_file_if_exists("/proc/" + std::to_string(entry.pid) + "/cgroup").value_or("");
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace runscope::testing
