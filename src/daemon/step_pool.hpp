// A fixed set of threads for the short blocking steps of task operations: parsing a spec, making
// a cgroup, forking a shim, placing a process, a cgroup kill, reading an exit record, removing a
// folder. Waiting (for a shim, a deadline, a disk sync) is never done here: the Reactor and the
// StateWriter do it, so a thread is held only while a step works.
//
// Shared fairly between callers (each step is charged to the uid it works for): root's steps run
// first; a member's run round-robin with the other members', each member holds at most
// `per_member` threads at once and the members together all threads but one. A member's slow
// steps (a cgroup kill of a large tree, a slow systemd) can therefore never take the last thread
// from root, and one member never starves another.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace runscope::daemon {

struct StepPoolOptions {
  unsigned threads = 6;
  unsigned per_member = 2;
};

class StepPool {
 public:
  using Step = std::function<void()>;

  explicit StepPool(StepPoolOptions options);
  ~StepPool();  // shutdown()
  StepPool(const StepPool&) = delete;
  StepPool& operator=(const StepPool&) = delete;

  // Runs `step` on a pool thread, charged to `owner`. After shutdown() it is dropped (destroyed,
  // not run). Never blocks: admission bounds what callers can queue (daemon/admission.hpp).
  void post(uid_t owner, Step step);
  // Drops what is queued, waits for the running steps, joins the threads. Idempotent.
  void shutdown() noexcept;

  std::size_t queued() const;

 private:
  void work() noexcept;
  bool take(Step& step, uid_t& owner);  // mutex_ held: the next step this rule allows, if any

  StepPoolOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<uid_t, std::deque<Step>> queues_;  // by owner; an owner's steps keep their order
  std::map<uid_t, unsigned> running_;
  unsigned members_running_ = 0;
  uid_t cursor_ = 0;  // the member served last (round-robin)
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace runscope::daemon
