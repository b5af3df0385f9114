// Tokenizer speed: encodes a text file with a GGUF's tokenizer N times (in process, no
// output) and prints the best and median times, MB/s and tokens/s.
//
//   tokenizer_bench -m VOCAB.gguf -f TEXT [-n RUNS] [--no-special] [--threads T] [--ids OUT]
//
// With --threads T, T threads encode the text at the same time on one shared Tokenizer
// (each its own copy of the work) to show that sharing does not serialize.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "gguf/reader.h"
#include "tokenizer/tokenizer.h"

namespace {

struct Args {
  std::string model;
  std::string text;
  std::string ids_out;  // --ids FILE: write the ids, one per line (to compare with a peer)
  int runs = 5;
  int threads = 1;
  bool parse_special = true;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) strata::fail("{} needs a value", arg);
      return argv[++i];
    };
    if (arg == "-m") a.model = value();
    else if (arg == "-f") a.text = value();
    else if (arg == "-n") a.runs = std::max(1, std::stoi(value()));
    else if (arg == "--threads") a.threads = std::max(1, std::stoi(value()));
    else if (arg == "--no-special") a.parse_special = false;
    else if (arg == "--ids") a.ids_out = value();
    else strata::fail("unknown argument '{}' (usage: tokenizer_bench -m VOCAB.gguf -f TEXT [-n RUNS] [--no-special] [--threads T] [--ids OUT])", arg);
  }
  if (a.model.empty() || a.text.empty()) strata::fail("usage: tokenizer_bench -m VOCAB.gguf -f TEXT [-n RUNS]");
  return a;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) strata::fail("{}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    const std::string text = read_all(args.text);
    auto t0 = std::chrono::steady_clock::now();
    const auto file = strata::gguf::File::open(args.model);
    const auto tok = strata::Tokenizer::from_gguf(file);
    const double load_s = seconds_since(t0);

    std::vector<double> times;
    std::vector<double> cpu_times;
    size_t n_tokens = 0;
    for (int r = 0; r < args.runs; ++r) {
      const double cpu0 = cpu_seconds();
      t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      std::vector<size_t> counts(size_t(args.threads));
      for (int t = 0; t < args.threads; ++t)
        pool.emplace_back([&, t] { counts[size_t(t)] = tok.encode(text, false, args.parse_special).size(); });
      for (auto& th : pool) th.join();
      times.push_back(seconds_since(t0));
      cpu_times.push_back(cpu_seconds() - cpu0);
      n_tokens = counts[0];
    }
    std::sort(times.begin(), times.end());
    std::sort(cpu_times.begin(), cpu_times.end());
    const double best = times.front();
    const double median = times[times.size() / 2];
    const double mb = double(text.size()) * args.threads / 1e6;
    std::printf("%s\n", fmt::format("tokenizer_bench: {} ({} tokens, pre '{}'), text {} ({} bytes), {} threads", args.model,
                                    tok.n_tokens(), tok.vocab().pre, args.text, text.size(), args.threads).c_str());
    std::printf("  load %.1f ms; encode best %.2f ms, median %.2f ms of %d runs (CPU time best %.2f ms); %zu tokens\n",
                load_s * 1e3, best * 1e3, median * 1e3, args.runs, cpu_times.front() * 1e3, n_tokens);
    std::printf("  %.1f MB/s, %.2f M tokens/s (best)\n", mb / best, double(n_tokens) * args.threads / best / 1e6);
    if (!args.ids_out.empty()) {
      std::string out;
      for (auto id : tok.encode(text, false, args.parse_special)) out += fmt::format("{}\n", id);
      std::ofstream(args.ids_out, std::ios::binary) << out;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
