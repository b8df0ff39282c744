#include "daemon/step_pool.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace runscope::daemon {

StepPool::StepPool(StepPoolOptions options) : options_(options) {
  options_.threads = std::max(options_.threads, 2u);  // one for root at least, one for members
  options_.per_member = std::clamp(options_.per_member, 1u, options_.threads - 1);
  threads_.reserve(options_.threads);
  try {
    for (unsigned i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { work(); });
  } catch (...) {
    shutdown();
    throw;
  }
}

StepPool::~StepPool() { shutdown(); }

void StepPool::post(uid_t owner, Step step) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    queues_[owner].push_back(std::move(step));
  }
  wake_.notify_one();
}

std::size_t StepPool::queued() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [owner, q] : queues_) n += q.size();
  return n;
}

void StepPool::shutdown() noexcept {
  std::map<uid_t, std::deque<Step>> dropped;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(queues_);
  }
  wake_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool StepPool::take(Step& step, uid_t& owner) {
  auto pop = [&](std::map<uid_t, std::deque<Step>>::iterator it) {
    owner = it->first;
    step = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) queues_.erase(it);
  };
  if (auto root = queues_.find(0); root != queues_.end()) {
    pop(root);
    return true;
  }
  if (members_running_ + 1 >= options_.threads) return false;  // the last thread stays root's
  // Round-robin: the first member after the one served last that may have one more thread.
  auto start = queues_.upper_bound(cursor_);
  for (std::size_t i = 0, n = queues_.size(); i < n; ++i, ++start) {
    if (start == queues_.end()) start = queues_.begin();
    auto held = running_.find(start->first);
    if (held == running_.end() || held->second < options_.per_member) {
      cursor_ = start->first;
      pop(start);
      return true;
    }
  }
  return false;
}

void StepPool::work() noexcept {
  for (;;) {
    Step step;
    uid_t owner = 0;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || take(step, owner); });
      if (!step) return;  // stopping
      ++running_[owner];
      if (owner != 0) ++members_running_;
    }
    try {
      step();
    } catch (const std::exception& e) {
      spdlog::error("task service: a step failed outside its handler: {}", e.what());
    } catch (...) {
      spdlog::error("task service: a step failed outside its handler");
    }
    step = nullptr;  // what it held goes before the next step is taken
    {
      std::lock_guard lock(mutex_);
      if (--running_[owner] == 0) running_.erase(owner);
      if (owner != 0) --members_running_;
    }
    wake_.notify_all();  // a member at its limit may take its next step now
  }
}

}  // namespace runscope::daemon
