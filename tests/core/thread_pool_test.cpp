#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace strata {
namespace {

// Every task of a run is called exactly once, with a thread index in [0, n_threads).
void expect_each_task_once(ThreadPool& pool, int64_t n_tasks) {
  std::vector<std::atomic<int>> calls(static_cast<size_t>(n_tasks));
  std::atomic<int> bad_thread{0};
  pool.run(n_tasks, [&](int64_t task, int thread) {
    calls[size_t(task)].fetch_add(1, std::memory_order_relaxed);
    if (thread < 0 || thread >= pool.n_threads()) bad_thread.fetch_add(1, std::memory_order_relaxed);
  });
  for (int64_t t = 0; t < n_tasks; ++t) EXPECT_EQ(calls[size_t(t)].load(), 1) << "task " << t << " of " << n_tasks;
  EXPECT_EQ(bad_thread.load(), 0);
}

TEST(ThreadPool, CountsThreads) {
  for (int n : {1, 2, 3, 8}) EXPECT_EQ(ThreadPool(n).n_threads(), n);
}

TEST(ThreadPool, EveryTaskRunsOnceForOneToManyThreads) {
  for (int n_threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(n_threads);
    for (int64_t n_tasks : {0, 1, 2, 3, 5, 64, 1000}) expect_each_task_once(pool, n_tasks);
  }
}

TEST(ThreadPool, NegativeTaskCountRunsNothing) {
  ThreadPool pool(3);
  int calls = 0;
  pool.run(-5, [&](int64_t, int) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, SeveralThreadsTakePart) {
  // Tasks that wait for each other can only finish if two threads run them at once.
  ThreadPool pool(2);
  std::atomic<int> arrived{0};
  std::atomic<bool> met{false};
  pool.run(2, [&](int64_t, int) {
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    if (arrived.load() == 2) met.store(true);
  });
  EXPECT_TRUE(met.load());
}

TEST(ThreadPool, ResultsOfEachTaskAreVisibleAfterRun) {
  ThreadPool pool(4);
  std::vector<int64_t> out(10000, -1);  // plain (non-atomic) writes, one element per task
  pool.run(int64_t(out.size()), [&](int64_t task, int) { out[size_t(task)] = task * task; });
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], int64_t(i) * int64_t(i)) << i;
}

TEST(ThreadPool, ManyQuickSuccessiveRuns) {
  ThreadPool pool(3);
  std::vector<int64_t> out(7);
  int64_t total = 0;
  for (int run = 0; run < 5000; ++run) {
    const int64_t n_tasks = 1 + run % 7;
    pool.run(n_tasks, [&](int64_t task, int) { out[size_t(task)] = run + task; });
    for (int64_t t = 0; t < n_tasks; ++t) total += out[size_t(t)] - run - t;  // 0 when every task ran this run
  }
  EXPECT_EQ(total, 0);
}

TEST(ThreadPool, ExceptionPropagatesAfterEveryTaskEnded) {
  for (int n_threads : {1, 2, 3}) {
    ThreadPool pool(n_threads);
    std::vector<std::atomic<int>> calls(50);
    try {
      pool.run(50, [&](int64_t task, int) {
        calls[size_t(task)].fetch_add(1);
        if (task == 0 || task == 17) throw std::runtime_error("task " + std::to_string(task) + " failed");
      });
      ADD_FAILURE() << "no exception with " << n_threads << " threads";
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_TRUE(what == "task 0 failed" || what == "task 17 failed") << what;
    }
    // Every task still ran once, whatever the thread count.
    for (size_t t = 0; t < calls.size(); ++t) EXPECT_EQ(calls[t].load(), 1) << "task " << t;
    // The pool works normally afterwards, and the error is not thrown again.
    expect_each_task_once(pool, 100);
  }
}

TEST(ThreadPool, ExceptionOfASingleTask) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run(1, [](int64_t, int) { throw std::logic_error("one"); }), std::logic_error);
  expect_each_task_once(pool, 3);
}

TEST(ThreadPool, DestructionWhileIdle) {
  { ThreadPool never_used(4); }
  {
    ThreadPool pool(3);
    expect_each_task_once(pool, 10);
  }  // destroyed right after a run, workers still spinning
  {
    ThreadPool pool(3);
    expect_each_task_once(pool, 10);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // workers asleep
  }
  for (int i = 0; i < 50; ++i) ThreadPool(2).run(2, [](int64_t, int) {});  // made and dropped quickly
}

TEST(ThreadPool, PhysicalCoresIsAtLeastOne) {
  EXPECT_GE(ThreadPool::physical_cores(), 1);
  EXPECT_LE(ThreadPool::physical_cores(), int(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace
}  // namespace strata
