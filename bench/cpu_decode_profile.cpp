// Where a decode step of the fast CPU backend spends its time: a model's forward passes of one
// token, with every backend call timed by a wrapper backend (no sampling profiler needed).
// Prints, per op and per matmul weight class, the calls per token, microseconds per token and
// per call, the share of the step, and for matmuls the weight bytes read per second; then the
// round trip of a thread-pool run that every thread joins (the least a threaded op pays).
//
// --unfused times the plain ops of each fused matmul (the wrapper runs Backend's default
// composition of them); without it, each fused op is timed whole, under the names of its
// weights ("fused blk.attn_q+attn_k+attn_v").
//
// --q8-act: one-term 8-bit activations (CpuBackend's one_term_q8) instead of two-term ones.
//
//   cpu_decode_profile -m MODEL [-t THREADS] [-n TOKENS] [-i ISA] [--f32-act] [--unfused] [--q8-act]
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "runtime/session.h"

namespace {

using namespace strata;
using Clock = std::chrono::steady_clock;

// "blk.12.attn_q.weight" -> "blk.attn_q"; "output.weight" -> "output".
std::string weight_class(const std::string& name) {
  std::string s = name;
  if (s.ends_with(".weight")) s.resize(s.size() - 7);
  if (s.starts_with("blk.")) {
    const auto dot = s.find('.', 4);
    if (dot != std::string::npos) s = fmt::format("blk{}", std::string_view(s).substr(dot));
  }
  return s;
}

struct Stat {
  double seconds = 0;
  int64_t calls = 0;
  double bytes = 0;  // weight bytes read (matmuls)
};

// Every call forwarded to `inner`, timed under a name.
class TimingBackend : public Backend {
public:
  TimingBackend(Backend& inner, bool fused) : inner_(inner), fused_(fused) {}
  std::string_view name() const override { return inner_.name(); }
  Tensor alloc(DType type, ShapeRef ne, std::string name) override { return inner_.alloc(type, ne, std::move(name)); }
  Tensor upload(const Tensor& host) override { return inner_.upload(host); }
  Tensor to_host_f32(const Tensor& t) override { return inner_.to_host_f32(t); }
  void read_f32(const Tensor& t, std::span<float> out) override {
    timed("read logits", 0, [&] { inner_.read_f32(t, out); });
  }

  void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) override {
    timed("get_rows", 0, [&] { inner_.get_rows(table, ids, out); });
  }
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    timed("rms_norm", 0, [&] { inner_.rms_norm(x, weight, eps, out); });
  }
  void matmul(const Tensor& w, const Tensor& x, Tensor& out) override {
    timed("matmul " + weight_class(w.name()), double(w.n_bytes()), [&] { inner_.matmul(w, x, out); });
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    timed("add", 0, [&] { inner_.add(a, b, out); });
  }
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override {
    timed("swiglu", 0, [&] { inner_.swiglu(gate, up, out); });
  }
  void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) override {
    timed("rope", 0, [&] { inner_.rope(x, positions, config); });
  }
  void store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) override {
    timed("store_kv", 0, [&] { inner_.store_kv(src, cache, kv); });
  }
  void geglu(const Tensor& gate, const Tensor& up, Tensor& out) override {
    timed("geglu", 0, [&] { inner_.geglu(gate, up, out); });
  }
  void scale(const Tensor& x, float s, Tensor& out) override {
    timed("scale", 0, [&] { inner_.scale(x, s, out); });
  }
  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
                 int64_t window, Tensor& out) override {
    timed("attention", 0, [&] { inner_.attention(q, k_cache, v_cache, kv, scale, window, out); });
  }
  void matmul_fused(const FusedMatmul& op) override {
    if (!fused_) return Backend::matmul_fused(op);  // the plain ops, each timed
    std::string what = "fused ";
    double bytes = 0;
    for (const MatmulJob& j : op.jobs) {
      const std::string c = weight_class(j.w->name());
      what += &j == op.jobs.data() ? c : fmt::format("+{}", std::string_view(c).substr(c.find('.') + 1));
      bytes += double(j.w->n_bytes());
    }
    timed(what, bytes, [&] { inner_.matmul_fused(op); });
  }

  void reset() { stats_.clear(); }
  const std::map<std::string, Stat>& stats() const { return stats_; }

private:
  template <typename Fn>
  void timed(const std::string& what, double bytes, const Fn& fn) {
    const auto t0 = Clock::now();
    fn();
    Stat& s = stats_[what];
    s.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    s.calls += 1;
    s.bytes += bytes;
  }

  Backend& inner_;
  bool fused_;
  std::map<std::string, Stat> stats_;
};

struct Args {
  std::string model;
  int threads = 2;
  int tokens = 64;
  std::string isa;
  bool f32_act = false;
  bool unfused = false;
  bool q8_act = false;  // one-term 8-bit activations (CpuBackend's one_term_q8)
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("{} needs a value", s);
      return argv[++i];
    };
    if (s == "-m") {
      a.model = value();
    } else if (s == "-t") {
      a.threads = std::atoi(value().c_str());
    } else if (s == "-n") {
      a.tokens = std::atoi(value().c_str());
    } else if (s == "-i") {
      a.isa = value();
    } else if (s == "--f32-act") {
      a.f32_act = true;
    } else if (s == "--unfused") {
      a.unfused = true;
    } else if (s == "--q8-act") {
      a.q8_act = true;
    } else {
      fail(
          "unknown argument '{}' (cpu_decode_profile -m MODEL [-t N] [-n TOKENS] [-i ISA] [--f32-act] [--unfused] "
          "[--q8-act])",
          s);
    }
  }
  if (a.model.empty()) fail("-m MODEL is required");
  if (a.threads < 1 || a.tokens < 1) fail("-t and -n must be positive");
  return a;
}

cpu::Isa isa_named(const std::string& name) {
  if (name.empty()) return cpu::detected_isa();
  for (cpu::Isa isa : cpu::available_isas()) {
    if (cpu::isa_name(isa) == name) return isa;
  }
  fail("unknown or unavailable ISA path '{}'", name);
}

// Microseconds of one pool run of one task per thread, each waiting until every thread has
// started its task (so every worker has woken and joined): the round trip a threaded op pays
// at least (median of many).
double pool_round_trip_us(ThreadPool& pool) {
  std::vector<double> t;
  for (int i = 0; i < 2000; ++i) {
    std::atomic<int> arrived{0};
    const auto t0 = Clock::now();
    pool.run(pool.n_threads(), [&](int64_t, int) {
      arrived.fetch_add(1);
      while (arrived.load() < pool.n_threads()) {
      }
    });
    t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + long(t.size() / 2), t.end());
  return t[t.size() / 2];
}

void run(const Args& a) {
  CpuBackend cpu(a.threads, isa_named(a.isa), a.f32_act, a.q8_act);
  TimingBackend timing(cpu, !a.unfused);
  auto model = Model::load(a.model, timing);
  Session session(*model, timing, {.n_ctx = 2 * int64_t(a.tokens) + 8});
  const int32_t token = 1;
  for (int i = 0; i < a.tokens; ++i) session.eval(std::span(&token, 1));  // warm-up
  session.rewind(0);
  timing.reset();
  const auto t0 = Clock::now();
  for (int i = 0; i < a.tokens; ++i) session.eval(std::span(&token, 1));
  const double total = std::chrono::duration<double>(Clock::now() - t0).count();

  std::vector<std::pair<std::string, Stat>> rows(timing.stats().begin(), timing.stats().end());
  std::ranges::sort(rows, [](const auto& x, const auto& y) { return x.second.seconds > y.second.seconds; });
  const double n = a.tokens;
  fmt::print("{}: {}, {} decode steps from position 0: {:.3f} ms per token ({:.1f} tokens/s)\n", a.model,
             cpu.describe(), a.tokens, 1e3 * total / n, n / total);
  fmt::print("{:<44} {:>9} {:>11} {:>10} {:>7} {:>8}\n", "op", "calls/tok", "us/token", "us/call", "share", "GB/s");
  double timed_sum = 0;
  for (const auto& [what, s] : rows) {
    timed_sum += s.seconds;
    fmt::print("{:<44} {:>9.0f} {:>11.1f} {:>10.2f} {:>6.1f}% {:>8}\n", what, double(s.calls) / n, 1e6 * s.seconds / n,
               1e6 * s.seconds / double(s.calls), 100.0 * s.seconds / total,
               s.bytes > 0 ? fmt::format("{:.1f}", s.bytes / s.seconds / 1e9) : "");
  }
  fmt::print("{:<44} {:>9} {:>11.1f} {:>10} {:>6.1f}%\n", "(outside backend calls)", "", 1e6 * (total - timed_sum) / n,
             "", 100.0 * (total - timed_sum) / total);
  ThreadPool pool(a.threads);
  fmt::print("pool round trip ({} threads, every thread joins): {:.2f} us\n", a.threads, pool_round_trip_us(pool));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    run(parse(argc, argv));
  } catch (const strata::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
