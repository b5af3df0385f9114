// strata perplexity -m MODEL -f TEXT [-c CTX] [--chunks N]: llama.cpp's method.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/progress.h"
#include "runtime/perplexity.h"
#include "runtime/tensor_dump.h"

namespace strata::cli {
namespace {

struct PerplexityArgs {
  ModelOptions model;
  std::string file;
  int64_t chunks = -1;
};

void run_perplexity(PerplexityArgs& args) {
  if (args.chunks == 0 || args.chunks < -1) fail("--chunks must be -1 (all) or a count >= 1, got {}", args.chunks);
  std::ifstream in(args.file, std::ios::binary);
  if (!in) fail("{}: cannot open", args.file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (args.model.ctx_size == 0) args.model.ctx_size = 512;
  LoadedModel m = load_model(args.model);
  const std::vector<TokenId> tokens = encode_text(args.model, m.tokenizer, text, true, false, args.file);
  log_info(args.model, fmt::format("perplexity: {} tokens, chunks of {}", tokens.size(), args.model.ctx_size));
  const SessionOptions options{
      .n_ctx = args.model.ctx_size, .kv_type = kv_dtype(args.model), .n_batch = args.model.ctx_size};
  Session session(*m.model, *m.backend, options);
  const Tap tap = args.model.dump_dir.empty() ? Tap{} : dump_tap(*m.backend, args.model.dump_dir);
  const int64_t n_ctx = args.model.ctx_size;
  int64_t n_chunks = int64_t(tokens.size()) / n_ctx;
  if (args.chunks > 0) n_chunks = std::min(n_chunks, args.chunks);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  ProgressBar bar("perplexity", !args.model.quiet);
  const PerplexityResult r = perplexity(
      session, m.tokenizer, tokens, n_ctx, args.chunks,
      [&](int64_t chunk, double ppl) {
        std::printf("[%lld]%.4f,", (long long)chunk + 1, ppl);
        std::fflush(stdout);
        const double elapsed = seconds();
        const double rate = double((chunk + 1) * n_ctx) / elapsed;
        const double eta = elapsed / double(chunk + 1) * double(n_chunks - chunk - 1);
        if (chunk == 0) {
          log_info(args.model, fmt::format("\nperplexity: {:.2f} s per chunk ({:.1f} tok/s), {} chunks: ETA {:.1f} s",
                                           elapsed, rate, n_chunks, eta));
        }
        bar.update(double(chunk + 1) / double(n_chunks),
                   fmt::format("chunk {}/{}, {:.1f} tok/s, ETA {:.0f} s", chunk + 1, n_chunks, rate, eta));
      },
      tap);
  bar.finish();
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_error);
  const double elapsed = seconds();
  log_info(args.model, fmt::format("perplexity: {} chunks of {} tokens in {:.2f} s ({:.1f} tok/s)", r.n_chunks, n_ctx,
                                   elapsed, double(r.n_chunks * n_ctx) / elapsed));
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a text file, by llama.cpp's method");
  add_model_options(cmd, args->model);
  add_dump_option(cmd, args->model);
  cmd->add_option("-f,--file", args->file, "text file")->required();
  cmd->add_option("--chunks", args->chunks, "score at most N chunks; -1 = all (the default)");
  cmd->get_option("-c")->description("tokens per chunk; 0 = 512 (the default)");
  cmd->callback([args] { run_perplexity(*args); });
}

}  // namespace strata::cli
