// strata perplexity -m MODEL -f TEXT [-c CTX] [--chunks N]: llama.cpp's method.
#include <cstdio>
#include <fstream>
#include <iterator>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
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
  Session session(*m.model, *m.backend, {.n_ctx = args.model.ctx_size, .kv_type = kv_dtype(args.model), .n_batch = args.model.ctx_size});
  const Tap tap = args.model.dump_dir.empty() ? Tap{} : dump_tap(*m.backend, args.model.dump_dir);
  const PerplexityResult r = perplexity(
      session, m.tokenizer, tokens, args.model.ctx_size, args.chunks,
      [](int64_t chunk, double ppl) {
        std::printf("[%lld]%.4f,", (long long)chunk + 1, ppl);
        std::fflush(stdout);
      },
      tap);
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_error);
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
