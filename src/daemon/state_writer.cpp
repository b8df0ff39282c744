#include "daemon/state_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::daemon {

StateWriter::StateWriter(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  dir_fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd_) throw_system_error("open the state folder " + dir.string());
  thread_ = std::thread([this] { run(); });
}

StateWriter::~StateWriter() { shutdown(); }

void StateWriter::write(std::filesystem::path path, std::string content, unsigned mode, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(path), std::move(content), mode, std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(std::make_exception_ptr(Error(ErrorKind::conflict, "the daemon is shutting down")));
}

std::uint64_t StateWriter::batches() const {
  std::lock_guard lock(mutex_);
  return batches_;
}

void StateWriter::shutdown() noexcept {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StateWriter::commit(std::deque<Request>& batch) noexcept {
  std::vector<std::exception_ptr> errors(batch.size());
  bool any = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    try {
      write_file_atomic(batch[i].path, batch[i].content, batch[i].mode, Durability::deferred);
      any = true;
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  if (any && ::syncfs(dir_fd_.get()) != 0) {
    auto failed = std::make_exception_ptr(
        Error(ErrorKind::system, std::string("syncing the state folder failed: ") + std::strerror(errno), errno));
    for (auto& e : errors) {
      if (!e) e = failed;
    }
  }
  {
    std::lock_guard lock(mutex_);
    ++batches_;
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    try {
      batch[i].done(errors[i]);
    } catch (const std::exception& e) {
      spdlog::error("task service: after saving {}: {}", batch[i].path.string(), e.what());
    }
  }
  batch.clear();
}

void StateWriter::run() noexcept {
  for (;;) {
    std::deque<Request> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, all written
      batch.swap(queue_);
    }
    commit(batch);
  }
}

}  // namespace runscope::daemon
