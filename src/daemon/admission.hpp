// What callers may hold in the daemon at once: operations admitted and not answered yet, counted
// and weighed (the bytes their requests keep alive: the D-Bus message, the spec text and the
// parsed spec). A call beyond its caller's share is refused at once, before anything is queued or
// parsed. Root has a share of its own that no member's load touches.
//
// The bounds (docs/daemon.md, "Bounds"): each member at most `member_ops` operations and
// `member_bytes`; all members together `members_bytes`; root `root_ops` and `root_bytes`. So
// queued calls hold at most members_bytes + root_bytes of memory, whatever the callers do.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include "daemon/task_service.hpp"

namespace runscope::daemon {

struct AdmissionLimits {
  std::size_t member_ops = 64;
  std::size_t member_bytes = 32u << 20;
  std::size_t members_bytes = 64u << 20;
  std::size_t root_ops = 1024;
  std::size_t root_bytes = 128u << 20;
  // Commands entered into tasks (EnterTask) and still running: each holds its caller's three
  // descriptors, a pidfd and a reply for as long as it runs, so they have a count of their own,
  // apart from the short operations above (an interactive shell may run for hours).
  std::size_t member_enters = 8;
  std::size_t root_enters = 64;
};

// The bounds of the enters' own Admission: their counts, the same byte shares.
AdmissionLimits enter_limits(const AdmissionLimits& limits);

// What one request is charged: a start keeps its spec alive about four times over (the message,
// the text handed to the service, the parsed spec, the record), anything else a small constant.
std::size_t start_weight(std::size_t spec_bytes);
inline constexpr std::size_t kRequestWeight = 1024;

class Admission {
 public:
  explicit Admission(AdmissionLimits limits) : limits_(limits) {}

  // Held while the operation is in flight; destroying it gives the share back.
  class Ticket {
   public:
    ~Ticket() { give_back(); }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;

    // Gives the share back now (once; later calls and the destructor do nothing). Called just
    // before the caller is answered: an answered caller may call again at once, and must find
    // its share free then, not once the last copy of its reply is gone.
    void give_back() noexcept {
      if (!given_back_.exchange(true)) owner_.release(uid_, bytes_);
    }

   private:
    friend class Admission;
    Ticket(Admission& owner, uid_t uid, std::size_t bytes) : owner_(owner), uid_(uid), bytes_(bytes) {}
    Admission& owner_;
    uid_t uid_;
    std::size_t bytes_;
    std::atomic<bool> given_back_{false};
  };

  // Throws Error(resources) naming the bound when the caller's share is used up.
  std::shared_ptr<Ticket> admit(const Caller& caller, std::size_t bytes, std::string_view what);

  struct Use {
    std::size_t ops = 0, bytes = 0;
  };
  Use in_use(uid_t uid) const;
  std::size_t members_bytes() const;

 private:
  void release(uid_t uid, std::size_t bytes) noexcept;

  AdmissionLimits limits_;
  mutable std::mutex mutex_;
  std::map<uid_t, Use> use_;
  std::size_t members_bytes_ = 0;
};

}  // namespace runscope::daemon
