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

namespace {

constexpr uint64_t kCountMask = (uint64_t(1) << 20) - 1;
constexpr uint64_t kGenerationMask = (uint64_t(1) << 24) - 1;

uint64_t pack(uint32_t generation, uint64_t n, uint64_t next) {
  return (uint64_t(generation) & kGenerationMask) << 40 | n << 20 | next;
}
uint32_t generation_of(uint64_t state) {
  return uint32_t(state >> 40);
}
uint64_t count_of(uint64_t state) {
  return (state >> 20) & kCountMask;
}
uint64_t next_of(uint64_t state) {
  return state & kCountMask;
}

}  // namespace

void ThreadPool::work(int thread, uint32_t generation) {
  for (;;) {
    uint64_t state = state_.load(std::memory_order_acquire);
    if (generation_of(state) != (generation & kGenerationMask) || next_of(state) >= count_of(state)) return;
    if (!state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel)) continue;
    const Job& job = jobs_[generation & 1];  // stable: the job cannot end before this task does
    try {
      job.trampoline(job.fn, job.offset + int64_t(next_of(state)), thread);
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_release);
  }
}

void ThreadPool::worker_loop(int thread) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t now = generation_.load(std::memory_order_acquire);
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
    work(thread, seen);
  }
}

void ThreadPool::run_erased(int64_t n_tasks, const void* fn, Trampoline trampoline) {
  constexpr int64_t kMaxJob = int64_t(kCountMask);
  error_ = nullptr;
  for (int64_t offset = 0; offset < n_tasks; offset += kMaxJob) {
    run_job(Job{fn, trampoline, offset}, std::min(kMaxJob, n_tasks - offset));
  }
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void ThreadPool::run_job(const Job& job, int64_t n) {
  const uint32_t generation = generation_.load(std::memory_order_relaxed) + 1;
  jobs_[generation & 1] = job;
  done_.store(0, std::memory_order_relaxed);
  state_.store(pack(generation, uint64_t(n), 0), std::memory_order_release);
  generation_.store(generation, std::memory_order_release);
  generation_.notify_all();
  work(0, generation);
  for (int i = 0; done_.load(std::memory_order_acquire) != n; ++i) spin_step(i);
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
