// strata bench -m MODEL [--backend B] [-p 512] [-n 128] [-r 3] [--json]
//
// Prompt processing and generation speed, reported like llama-bench: pp<P> is one forward
// pass of P prompt tokens from an empty context; tg<N> is N single-token decode steps from
// an empty context, each returning its logits to the host as generation does. Each test runs
// once to warm up, then --reps times; the best run is the headline figure (the mean is
// printed too). Token ids are seeded pseudo-random ids of the vocabulary.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/session.h"

namespace strata::cli {
namespace {

struct BenchArgs {
  ModelOptions model;
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  int reps = 3;
  bool json = false;
};

struct BenchResult {
  std::string test;  // "pp512", "tg128"
  int64_t n_tokens = 0;
  std::vector<double> seconds;  // one per repetition
  double best() const { return *std::min_element(seconds.begin(), seconds.end()); }
  double mean() const {
    double s = 0;
    for (double x : seconds) s += x;
    return s / double(seconds.size());
  }
};

double elapsed_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One forward pass of `tokens` from position 0 (eval waits for the logits).
double time_prompt(Session& session, std::span<const int32_t> tokens) {
  session.rewind(0);
  const auto start = std::chrono::steady_clock::now();
  session.eval(tokens);
  return elapsed_since(start);
}

// tokens.size() decode steps of one token each, from position 0.
double time_generation(Session& session, std::span<const int32_t> tokens) {
  session.rewind(0);
  const auto start = std::chrono::steady_clock::now();
  for (const int32_t t : tokens) session.eval(std::span(&t, 1));
  return elapsed_since(start);
}

BenchResult run_test(const std::string& name, int64_t n, int reps, const std::function<double()>& once) {
  BenchResult r{name, n, {}};
  once();  // warm-up: kernel loading, library handles, buffer allocation
  for (int i = 0; i < reps; ++i) r.seconds.push_back(once());
  return r;
}

void run_bench(const BenchArgs& args) {
  LoadedModel m = load_model(args.model);
  const ModelConfig& c = m.model->config();
  size_t model_bytes = 0, embd_bytes = 0;
  int64_t n_params = 0;
  for (const auto& t : m.model->file().tensors()) {
    model_bytes += size_t(t.nbytes);
    n_params += t.n_elements();
    if (t.name == "token_embd.weight") embd_bytes = size_t(t.nbytes);
  }
  // Weights read per decoded token: all but the embedding table (one row of it is read),
  // unless the output matrix is that table.
  const size_t decode_bytes = c.tied_output ? model_bytes : model_bytes - embd_bytes;
  const int64_t n_ctx =
      args.model.ctx_size > 0 ? args.model.ctx_size : std::max<int64_t>({args.n_prompt, args.n_gen, 1});
  Session session(*m.model, *m.backend, {n_ctx, kv_dtype(args.model)});
  if (args.n_prompt > session.n_ctx() || args.n_gen > session.n_ctx()) {
    fail("bench: -p {} / -n {} do not fit the context of {}", args.n_prompt, args.n_gen, session.n_ctx());
  }
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> id(0, int32_t(c.n_vocab - 1));
  std::vector<int32_t> tokens(size_t(std::max(args.n_prompt, args.n_gen)));
  for (auto& t : tokens) t = id(rng);

  std::vector<BenchResult> results;
  if (args.n_prompt > 0) {
    const std::span<const int32_t> prompt(tokens.data(), size_t(args.n_prompt));
    results.push_back(run_test(fmt::format("pp{}", args.n_prompt), args.n_prompt, args.reps,
                               [&] { return time_prompt(session, prompt); }));
  }
  if (args.n_gen > 0) {
    const std::span<const int32_t> gen(tokens.data(), size_t(args.n_gen));
    results.push_back(run_test(fmt::format("tg{}", args.n_gen), args.n_gen, args.reps,
                               [&] { return time_generation(session, gen); }));
  }

  const std::string model_path = resolve_model_path(args.model.model);
  if (args.json) {
    nlohmann::ordered_json j;
    j["model"] = model_path;
    j["model_bytes"] = model_bytes;
    j["n_params"] = n_params;
    j["backend"] = std::string(m.backend->name());
    j["device"] = m.backend->device_name();
    j["kv_type"] = args.model.kv_type;
    j["results"] = nlohmann::ordered_json::array();
    for (const BenchResult& r : results) {
      nlohmann::ordered_json e;
      e["test"] = r.test;
      e["n_tokens"] = r.n_tokens;
      e["reps"] = r.seconds.size();
      e["best_s"] = r.best();
      e["tokens_per_s"] = double(r.n_tokens) / r.best();
      e["mean_tokens_per_s"] = double(r.n_tokens) / r.mean();
      if (r.test.starts_with("tg")) e["weight_bytes_per_token"] = decode_bytes;
      j["results"].push_back(e);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model: %s (%.2f GiB, %.2f B params), backend %s on %s, KV cache %s\n", model_path.c_str(),
              double(model_bytes) / double(1 << 30), double(n_params) / 1e9, std::string(m.backend->name()).c_str(),
              m.backend->device_name().c_str(), args.model.kv_type.c_str());
  std::printf("| %-8s | %12s | %12s | %14s |\n", "test", "t/s (best)", "t/s (mean)", "weights GB/s");
  for (const BenchResult& r : results) {
    const double tps = double(r.n_tokens) / r.best();
    const std::string bandwidth =
        r.test.starts_with("tg") ? fmt::format("{:.1f}", tps * double(decode_bytes) / 1e9) : "";
    std::printf("| %-8s | %12.2f | %12.2f | %14s |\n", r.test.c_str(), tps, double(r.n_tokens) / r.mean(),
                bandwidth.c_str());
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Prompt (pp) and generation (tg) speed in tokens per second");
  add_model_options(cmd, args->model);
  cmd->add_option("-p,--n-prompt", args->n_prompt, "prompt tokens of the pp test; 0 = skip")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_option("-n,--n-gen", args->n_gen, "decode steps of the tg test; 0 = skip")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_option("-r,--reps", args->reps, "timed repetitions of each test (after one warm-up)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", args->json, "print the results as JSON");
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace strata::cli
