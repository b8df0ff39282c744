// The parts the task service's asynchronous core is built from, each on its own: the Reactor
// (fd watches, timers, posted work), the StepPool's fairness between callers, the StateWriter's
// group commit, and Admission's bounds per caller.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <latch>
#include <mutex>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/admission.hpp"
#include "daemon/reactor.hpp"
#include "daemon/state_writer.hpp"
#include "daemon/step_pool.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::daemon {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

// Opens a latch when the test body ends however it ends, so a pool or writer whose thread waits
// on it can be joined. Declared after that pool or writer, it runs before the join.
class OpenOnExit {
 public:
  explicit OpenOnExit(std::latch& latch) : latch_(latch) {}
  OpenOnExit(const OpenOnExit&) = delete;
  OpenOnExit& operator=(const OpenOnExit&) = delete;
  ~OpenOnExit() { open(); }
  void open() {
    if (!open_) latch_.count_down();
    open_ = true;
  }

 private:
  std::latch& latch_;
  bool open_ = false;
};

template <typename T>
T await(std::future<T>& f) {
  if (f.wait_for(20s) != std::future_status::ready) throw std::runtime_error("timed out waiting");
  return f.get();
}

TEST(AReactor, FiresTimersInDeadlineOrderAndSkipsCancelledOnes) {
  std::mutex m;
  std::vector<int> fired;
  std::promise<void> last;
  Reactor reactor;  // after what its callbacks touch: it joins first
  auto t0 = Steady::now();
  reactor.at(t0 + 60ms, [&] {
    std::lock_guard lock(m);
    fired.push_back(3);
    last.set_value();
  });
  reactor.at(t0 + 20ms, [&] {
    std::lock_guard lock(m);
    fired.push_back(1);
  });
  auto cancelled = reactor.at(t0 + 30ms, [&] {
    std::lock_guard lock(m);
    fired.push_back(2);
  });
  reactor.cancel(cancelled);
  auto done = last.get_future();
  await(done);
  std::lock_guard lock(m);
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
  EXPECT_GE(Steady::now() - t0, 60ms);
  EXPECT_EQ(reactor.watched(), 0u);
}

TEST(AReactor, CallsAWatchOncePerArmingAndRunsPostedWork) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd ours(sv[0]), theirs(sv[1]);
  std::atomic<int> calls{0};
  std::promise<void> first, second, posted;
  Reactor reactor;  // after what its callbacks touch (the watched fd too): it joins first
  Reactor::Key key = reactor.watch(ours.get(), [&] {
    char buf[16];
    (void)!::recv(ours.get(), buf, sizeof buf, 0);
    if (++calls == 1) first.set_value();
    else second.set_value();
  });
  ASSERT_EQ(::send(theirs.get(), "a", 1, 0), 1);
  auto f1 = first.get_future();
  await(f1);
  ASSERT_EQ(::send(theirs.get(), "b", 1, 0), 1);  // not armed: no call yet
  reactor.post([&] { posted.set_value(); });
  auto p = posted.get_future();
  await(p);
  EXPECT_EQ(calls.load(), 1);
  reactor.rearm(key);
  auto f2 = second.get_future();
  await(f2);
  EXPECT_EQ(calls.load(), 2);
  reactor.unwatch(key);
  EXPECT_EQ(reactor.watched(), 0u);
}

TEST(AStepPool, KeepsAThreadForRootWhileMembersHoldEveryOtherOne) {
  // Everything the steps touch is declared before the pool, so it outlives the pool's join.
  std::latch release(1);
  std::atomic<int> member_running{0};
  std::promise<void> two_running;
  std::promise<void> root_ran;
  StepPool pool(StepPoolOptions{3, 2});
  OpenOnExit open(release);
  // Two members, three blocking steps each: at most 2 threads for all members (3 threads - 1).
  for (uid_t member : {1001u, 1002u}) {
    for (int i = 0; i < 3; ++i) {
      pool.post(member, [&] {
        if (++member_running == 2) two_running.set_value();
        release.wait();
      });
    }
  }
  auto running = two_running.get_future();
  await(running);
  pool.post(0, [&] { root_ran.set_value(); });
  auto ran = root_ran.get_future();
  EXPECT_EQ(ran.wait_for(10s), std::future_status::ready) << "root's step waited for the members'";
  EXPECT_EQ(member_running.load(), 2);  // the members never got the third thread
}

TEST(AStepPool, ServesMembersInTurnSoOneMembersBacklogDoesNotStarveAnother) {
  std::mutex m;
  std::vector<uid_t> order;
  std::latch gate(1);
  std::promise<void> other_ran;
  StepPool pool(StepPoolOptions{2, 1});  // one thread for members at all
  OpenOnExit open(gate);
  pool.post(1001, [&] { gate.wait(); });  // holds the members' thread while the queues fill
  for (int i = 0; i < 5; ++i) {
    pool.post(1001, [&] {
      std::lock_guard lock(m);
      order.push_back(1001);
    });
  }
  pool.post(1002, [&] {
    {
      std::lock_guard lock(m);
      order.push_back(1002);
    }
    other_ran.set_value();
  });
  auto ran = other_ran.get_future();
  open.open();
  await(ran);
  std::lock_guard lock(m);
  // 1002 came after five of 1001's, but ran after at most one of them.
  auto pos = std::find(order.begin(), order.end(), 1002u) - order.begin();
  EXPECT_LE(pos, 1);
}

TEST(AStateWriter, WritesWhatQueuedDuringOneSyncAsOneBatchAndAnswersEachOnceDurable) {
  testing::TempDir dir;
  std::latch hold(1);
  std::promise<void> first_done;
  std::atomic<int> answered{0};
  std::promise<void> all;
  StateWriter writer(dir.path());  // after what its callbacks touch: it joins first
  OpenOnExit open(hold);
  // The first request's callback holds the writer's thread: what arrives meanwhile is one batch.
  writer.write(dir.path() / "first", "1", 0600, [&](std::exception_ptr e) {
    EXPECT_FALSE(e);
    first_done.set_value();
    hold.wait();
  });
  auto f = first_done.get_future();
  await(f);
  for (int i = 0; i < 10; ++i) {
    writer.write(dir.path() / ("f" + std::to_string(i)), std::to_string(i), 0600, [&](std::exception_ptr e) {
      EXPECT_FALSE(e);
      if (++answered == 10) all.set_value();
    });
  }
  open.open();
  auto a = all.get_future();
  await(a);
  EXPECT_EQ(writer.batches(), 2u);
  EXPECT_EQ(read_file(dir.path() / "f7"), "7");
}

TEST(AStateWriter, FailsOnlyTheRequestWhoseFileCannotBeWritten) {
  testing::TempDir dir;
  std::promise<std::exception_ptr> bad, good;
  StateWriter writer(dir.path());
  writer.write(dir.path() / "missing" / "task.json", "x", 0600, [&](std::exception_ptr e) { bad.set_value(e); });
  writer.write(dir.path() / "task.json", "y", 0600, [&](std::exception_ptr e) { good.set_value(e); });
  auto b = bad.get_future();
  auto g = good.get_future();
  auto error = await(b);
  ASSERT_TRUE(error);
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(await(g));
  EXPECT_EQ(read_file(dir.path() / "task.json"), "y");
}

TEST(AnAdmission, RefusesAMemberBeyondItsShareAndGivesItBackWhenAnswered) {
  Admission admission(AdmissionLimits{2, 1u << 20, 4u << 20, 4, 8u << 20});
  Caller alice{1001, 1001}, root{};
  auto a = admission.admit(alice, 1000, "StopTask");
  auto b = admission.admit(alice, 1000, "StopTask");
  try {
    admission.admit(alice, 1000, "StopTask");
    FAIL() << "a third operation was admitted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resources);
    EXPECT_NE(std::string(e.what()).find("uid 1001 has 2 of at most 2 operations"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(admission.admit(root, 1000, "StopTask"));  // root's share is its own
  a.reset();
  EXPECT_NO_THROW(admission.admit(alice, 1000, "StopTask"));
}

// The reply holding a ticket may be copied and outlive the answer: the share is free once the
// caller is answered all the same (an answered caller that calls again at once was refused).
TEST(AnAdmission, GivesTheShareBackOnceWhenTheCallerIsAnsweredWhateverCopiesOfTheTicketLive) {
  Admission admission(AdmissionLimits{1, 1u << 20, 4u << 20, 4, 8u << 20});
  Caller alice{1001, 1001};
  auto ticket = admission.admit(alice, 1000, "StopTask");
  auto copy = ticket;  // e.g. a copy of the reply still queued somewhere
  EXPECT_THROW(admission.admit(alice, 1000, "StopTask"), Error);
  ticket->give_back();
  EXPECT_EQ(admission.in_use(alice.uid).ops, 0u);
  auto next = admission.admit(alice, 1000, "StopTask");  // fits: the share is free
  ticket->give_back();                                   // a second time: nothing more
  copy.reset();
  ticket.reset();                                        // the last copy: nothing more either
  EXPECT_EQ(admission.in_use(alice.uid).ops, 1u);
  EXPECT_EQ(admission.in_use(alice.uid).bytes, 1000u);
  next.reset();
  EXPECT_EQ(admission.in_use(alice.uid).ops, 0u);
}

TEST(AnAdmission, WeighsRequestsInBytesPerMemberAndForAllMembersTogether) {
  Admission admission(AdmissionLimits{100, 3u << 20, 4u << 20, 100, 64u << 20});
  Caller alice{1001, 1001}, bob{1002, 1002};
  auto big = admission.admit(alice, 2u << 20, "StartTask");
  EXPECT_THROW(admission.admit(alice, 2u << 20, "StartTask"), Error);  // alice: 4 MiB > 3 MiB
  auto b = admission.admit(bob, 2u << 20, "StartTask");                 // together: 4 MiB
  try {
    admission.admit(bob, 1u << 20, "StartTask");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the members together hold 4 MiB of at most 4 MiB"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(admission.members_bytes(), 4u << 20);
  big.reset();
  b.reset();
  EXPECT_EQ(admission.members_bytes(), 0u);
  EXPECT_EQ(admission.in_use(1001).ops, 0u);
}

}  // namespace
}  // namespace runscope::daemon
