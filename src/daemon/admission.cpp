#include "daemon/admission.hpp"

#include <string>

#include "common/error.hpp"

namespace runscope::daemon {
namespace {

std::string mib(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

AdmissionLimits enter_limits(const AdmissionLimits& limits) {
  AdmissionLimits out = limits;
  out.member_ops = limits.member_enters;
  out.root_ops = limits.root_enters;
  return out;
}

std::size_t start_weight(std::size_t spec_bytes) { return 4 * spec_bytes + kRequestWeight; }

std::shared_ptr<Admission::Ticket> Admission::admit(const Caller& caller, std::size_t bytes, std::string_view what) {
  std::lock_guard lock(mutex_);
  Use& use = use_[caller.uid];
  const bool root = caller.is_root();
  const std::size_t max_ops = root ? limits_.root_ops : limits_.member_ops;
  const std::size_t max_bytes = root ? limits_.root_bytes : limits_.member_bytes;
  auto refuse = [&](const std::string& bound) {
    if (use.ops == 0) use_.erase(caller.uid);
    return Error(ErrorKind::resources, std::string(what) + " refused: too many requests in flight (" + bound +
                                           "); retry once some are answered");
  };
  if (use.ops + 1 > max_ops) {
    throw refuse("uid " + std::to_string(caller.uid) + " has " + std::to_string(use.ops) + " of at most " +
                 std::to_string(max_ops) + " operations");
  }
  if (use.bytes + bytes > max_bytes) {
    throw refuse("uid " + std::to_string(caller.uid) + " holds " + mib(use.bytes) + " of at most " + mib(max_bytes) +
                 " and this request weighs " + mib(bytes + (1u << 20) - 1));
  }
  if (!root && members_bytes_ + bytes > limits_.members_bytes) {
    throw refuse("the members together hold " + mib(members_bytes_) + " of at most " + mib(limits_.members_bytes));
  }
  ++use.ops;
  use.bytes += bytes;
  if (!root) members_bytes_ += bytes;
  return std::shared_ptr<Ticket>(new Ticket(*this, caller.uid, bytes));
}

void Admission::release(uid_t uid, std::size_t bytes) noexcept {
  std::lock_guard lock(mutex_);
  auto it = use_.find(uid);
  if (it == use_.end()) return;
  it->second.ops -= 1;
  it->second.bytes -= bytes;
  if (uid != 0) members_bytes_ -= bytes;
  if (it->second.ops == 0) use_.erase(it);
}

Admission::Use Admission::in_use(uid_t uid) const {
  std::lock_guard lock(mutex_);
  auto it = use_.find(uid);
  return it == use_.end() ? Use{} : it->second;
}

std::size_t Admission::members_bytes() const {
  std::lock_guard lock(mutex_);
  return members_bytes_;
}

}  // namespace runscope::daemon
