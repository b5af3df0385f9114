#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace strata {
namespace {

// Spins before a worker sleeps: long enough to bridge the gap between the ops of one
// forward pass, short enough not to steal a core from other work for long.
constexpr int kSpinIterations = 1 << 15;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// One step of a spin-wait: a pause, and every 64th step a yield, so that a waiting thread
// gives its core to a descheduled one (more threads than free cores) instead of spinning
// through its time slice.
inline void spin_step(int i) {
  if ((i & 63) == 63) {
    std::this_thread::yield();
  } else {
    cpu_relax();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void ThreadPool::work(int thread) {
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) return;
    try {
      trampoline_(fn_, task, thread);
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t now = generation_.load(std::memory_order_acquire);
    for (int i = 0; now == seen && i < kSpinIterations; ++i) {
      spin_step(i);
      now = generation_.load(std::memory_order_acquire);
    }
    if (now == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = now;
    if (stop_.load()) return;
    work(thread);
    unfinished_workers_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::run_erased(int64_t n_tasks, const void* fn, Trampoline trampoline) {
  fn_ = fn;
  trampoline_ = trampoline;
  n_tasks_ = n_tasks;
  error_ = nullptr;
  next_task_.store(0, std::memory_order_relaxed);
  unfinished_workers_.store(int(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  work(0);
  for (int i = 0; unfinished_workers_.load(std::memory_order_acquire) != 0; ++i) spin_step(i);
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

int ThreadPool::physical_cores() {
  // Linux: distinct (physical id, core id) pairs of the /proc/cpuinfo processors that are in
  // this process's affinity mask (a container or taskset may allow fewer than the machine has).
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const bool have_mask = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, physical;
  bool in_mask = true;
  while (std::getline(cpuinfo, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (line.rfind("processor", 0) == 0) {
      physical.clear();  // a processor without "physical id": package ""
#if defined(__linux__)
      const int cpu = std::atoi(value.c_str());
      in_mask = !have_mask || (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed));
#endif
    }
    if (line.rfind("physical id", 0) == 0) physical = value;
    if (line.rfind("core id", 0) == 0 && in_mask) cores.emplace(physical, value);
  }
  if (!cores.empty()) return int(cores.size());
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace strata
