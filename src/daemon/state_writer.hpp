// Durable state files, written in batches (group commit). Each request's file is replaced
// atomically (written to a temporary, renamed) by the writer's thread; then ONE syncfs() of the
// state directory's filesystem makes the whole batch durable, and only then is each request's
// `done` called. Requests that arrive while a batch syncs form the next batch, so N concurrent
// starts cost one sync, not N, and nobody holds a lock or a worker thread while the disk works.
//
// A failed write fails only its own request (e.g. ENOSPC, naming the file); a failed sync fails
// the whole batch. `done` runs on the writer's thread: it must be short (publish, reply, post).
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/fd.hpp"

namespace runscope::daemon {

class StateWriter {
 public:
  using Done = std::function<void(std::exception_ptr error)>;  // null: durable

  // `dir`: a folder on the state filesystem (created if missing).
  explicit StateWriter(const std::filesystem::path& dir);
  ~StateWriter();  // shutdown()
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  void write(std::filesystem::path path, std::string content, unsigned mode, Done done);
  // Writes and syncs what is queued (calling its `done`), then joins. Later writes fail at once.
  void shutdown() noexcept;

  std::uint64_t batches() const;  // syncs done so far (for tests and the bench)

 private:
  struct Request {
    std::filesystem::path path;
    std::string content;
    unsigned mode;
    Done done;
  };
  void run() noexcept;
  void commit(std::deque<Request>& batch) noexcept;

  UniqueFd dir_fd_;  // syncfs() target
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Request> queue_;
  bool stopping_ = false;
  std::uint64_t batches_ = 0;
  std::thread thread_;
};

}  // namespace runscope::daemon
