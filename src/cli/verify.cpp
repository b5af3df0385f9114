// strata verify -m MODEL -p PROMPT [--backend B] [--reference R] [--tokens N]
#include "runtime/verify.h"

#include <cstdio>

#include "cli/commands.h"
#include "cli/diff_table.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/backends.h"

namespace strata::cli {
namespace {

struct VerifyArgs {
  ModelOptions model;
  std::string reference = "cpu_ref64";
  std::string prompt;
  int64_t n_tokens = 8;
  bool unfused = false;
};

void print_tokens(const VerifyResult& r) {
  std::printf("logits top-1 agreement: %lld of %lld positions\n", (long long)r.n_top1_agree, (long long)r.n_positions);
  for (const auto& d : r.disagreements) {
    std::printf("  position %lld: %s picks %d, reference picks %d (reference top-2 margin %.6f)\n",
                (long long)d.position, "backend", d.test_top1, d.reference_top1, d.reference_margin);
  }
  if (r.closest_position >= 0) {
    std::printf("reference's nearest tie among the greedy tokens: position %lld, top-2 margin %.6f\n",
                (long long)r.closest_position, r.closest_margin);
  }
}

int run_verify(const VerifyArgs& args) {
  if (args.model.backend == args.reference && args.model.tensor_parallel == 1) {
    fail("--backend and --reference are both '{}'", args.reference);
  }
  LoadedModel test = load_model(args.model);
  ModelOptions ref_options = args.model;
  ref_options.backend = args.reference;
  ref_options.tensor_parallel = 1;
  ref_options.quiet = true;
  LoadedModel ref = load_model(ref_options);
  const std::vector<TokenId> prompt = encode_text(args.model, test.tokenizer, args.prompt, true, true, "the prompt");
  const SessionOptions session{args.model.ctx_size, kv_dtype(args.model), args.unfused};
  Session s_test(*test.model, *test.backend, session);
  Session s_ref(*ref.model, *ref.backend, session);
  const VerifyResult r = verify(s_test, s_ref, prompt, args.n_tokens);
  std::printf("backend %s against reference %s: %zu prompt tokens + %zu greedy tokens\n",
              std::string(test.backend->name()).c_str(), std::string(ref.backend->name()).c_str(), prompt.size(),
              r.tokens.size() - prompt.size());
  const int failures = print_diff_table(r.diffs);
  print_tokens(r);
  return failures > 0 ? 1 : 0;
}

}  // namespace

void register_verify(CLI::App& app) {
  auto args = std::make_shared<VerifyArgs>();
  auto* cmd = app.add_subcommand("verify", "Compare every named intermediate of two backends, layer by layer");
  add_model_options(cmd, args->model);
  cmd->add_option("-p,--prompt", args->prompt, "the prompt")->required();
  cmd->add_option("--reference", args->reference, "reference backend (cpu_ref64: cpu_ref accumulating in f64)")
      ->capture_default_str();
  cmd->add_option("--tokens", args->n_tokens, "greedy tokens appended to the prompt by the reference")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  cmd->add_flag("--unfused", args->unfused,
                "run each fused matmul as its plain ops (on both backends), to bisect a fused kernel");
  cmd->callback([args] {
    const int rc = run_verify(*args);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace strata::cli
