// A persistent pool of worker threads for data-parallel loops (the fast CPU backend).
//
// run(n_tasks, fn) calls fn(task, thread) once for every task in [0, n_tasks), spread over
// the pool's threads (the calling thread is thread 0 and works too), and returns when all
// have finished. Which thread runs which task varies from call to call, so a caller that
// wants results independent of the thread count makes each output the work of one task,
// computed in a fixed order. The workers are made once; between calls they spin briefly and
// then sleep, so a run that follows another closely starts in a few microseconds.
//
// The first exception thrown by a task is rethrown by run() after every task has ended.
// run() is not reentrant: a task must not call run() of the same pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class ThreadPool {
public:
  // n_threads >= 1 threads in all (n_threads - 1 workers besides the caller).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return int(workers_.size()) + 1; }

  template <typename Fn>  // Fn: void(int64_t task, int thread)
  void run(int64_t n_tasks, const Fn& fn) {
    if (n_tasks <= 0) return;
    if (n_tasks == 1 || workers_.empty()) {
      // As with workers: every task runs even after one has thrown; the first error is rethrown.
      std::exception_ptr error;
      for (int64_t t = 0; t < n_tasks; ++t) {
        try {
          fn(t, 0);
        } catch (...) {
          if (!error) error = std::current_exception();
        }
      }
      if (error) std::rethrow_exception(error);
      return;
    }
    run_erased(n_tasks, &fn,
               [](const void* f, int64_t task, int thread) { (*static_cast<const Fn*>(f))(task, thread); });
  }

  // The number of physical cores this process may run on (threads of one core counted once,
  // CPUs outside its affinity mask not counted); at least 1.
  static int physical_cores();

private:
  using Trampoline = void (*)(const void* fn, int64_t task, int thread);
  // A job: tasks offset .. offset + n - 1 of a run, n < 2^20 (a larger run is several jobs).
  struct Job {
    const void* fn = nullptr;
    Trampoline trampoline = nullptr;
    int64_t offset = 0;
  };
  void run_erased(int64_t n_tasks, const void* fn, Trampoline trampoline);
  void run_job(const Job& job, int64_t n);
  // Takes tasks of job `generation` until none is left or another job has begun.
  void work(int thread, uint32_t generation);
  void worker_loop(int thread);

  // state_ packs the current job's generation (low 24 bits of it), task count and next task:
  // a thread claims a task by one compare-exchange that fails once the job has changed, so a
  // worker that wakes late (after the caller has taken every task and returned) takes nothing
  // and touches nothing of a later job; the caller waits for its tasks to be done, not for
  // every worker to have woken.
  std::vector<std::thread> workers_;
  Job jobs_[2];  // by generation parity: written before the job is published in state_
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> done_{0};         // tasks of the current job that have finished
  std::atomic<uint32_t> generation_{0};  // bumped for each job; workers wait on it
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace strata
