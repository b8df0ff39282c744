// A fixed set of threads and a bounded queue, so slow task operations (a start waits for its
// cgroup, a stop for its kill timeout) run off the bus loop and a flood of calls is refused
// instead of piling up. Jobs left in the queue at shutdown get their `cancel` instead.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace runscope::api {

class WorkerPool {
 public:
  struct Job {
    std::function<void()> run;
    std::function<void()> cancel;  // the job will never run (shutdown); must not throw
  };

  WorkerPool(unsigned threads, std::size_t max_queued);
  ~WorkerPool();  // shutdown()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False when the queue is full or the pool is shut down (the job was not taken).
  bool submit(Job job);
  // Cancels what is queued, waits for running jobs, joins the threads. Idempotent.
  void shutdown() noexcept;

 private:
  void work() noexcept;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::size_t max_queued_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace runscope::api
