// strata run -m MODEL -p PROMPT [-n N] [sampling flags]: streams the generated text to
// stdout, then a timing summary on stderr.
#include <cstdio>
#include <random>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/generate.h"
#include "runtime/tensor_dump.h"

namespace strata::cli {
namespace {

struct RunArgs {
  ModelOptions model;
  SamplingParams sampling;
  bool seed_given = false;
  std::string prompt;
  std::string prompt_file;
  int64_t n_predict = 128;
  bool no_special = false;
};

std::string read_prompt(const RunArgs& args) {
  if (args.prompt_file.empty()) return args.prompt;
  std::FILE* f = std::fopen(args.prompt_file.c_str(), "rb");
  if (f == nullptr) fail("{}: cannot open prompt file", args.prompt_file);
  std::string text;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  return text;
}

void run(RunArgs& args) {
  check_n_predict(args.n_predict, "until the end of generation or of the context");
  validate(args.sampling);
  if (!args.seed_given) args.sampling.seed = std::random_device{}();
  LoadedModel m = load_model(args.model);
  const std::vector<TokenId> prompt =
      encode_text(args.model, m.tokenizer, read_prompt(args), true, !args.no_special, "the prompt");
  Session session(*m.model, *m.backend, {.n_ctx = args.model.ctx_size, .kv_type = kv_dtype(args.model), .n_batch = int64_t(prompt.size())});
  if (int64_t(prompt.size()) >= session.n_ctx()) {
    fail("the prompt is {} tokens, the context holds {} (--ctx-size): it leaves no room to generate", prompt.size(),
         session.n_ctx());
  }
  log_info(args.model, fmt::format("prompt: {} tokens, context {}, KV cache {} ({:.1f} MiB), seed {}", prompt.size(),
                                   session.n_ctx(), args.model.kv_type, double(session.kv_bytes()) / (1 << 20),
                                   args.sampling.seed));
  Sampler sampler(args.sampling, int32_t(m.model->config().n_vocab));
  const std::function<void(std::string_view)> print = [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };
  GenerationRequest request{prompt, args.n_predict, &print, nullptr, {}};
  if (!args.model.dump_dir.empty()) request.tap = dump_tap(*m.backend, args.model.dump_dir);
  const GenerationStats stats = generate(session, m.tokenizer, sampler, request);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (stats.stop == StopReason::context_full) {
    std::fprintf(stderr, "stopped: the context of %lld tokens is full (--ctx-size)\n", (long long)session.n_ctx());
  }
  log_info(args.model, format_stats(stats));
}

}  // namespace

void register_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt");
  add_model_options(cmd, args->model);
  add_dump_option(cmd, args->model);
  add_sampling_options(cmd, args->sampling, args->seed_given);
  auto* p = cmd->add_option("-p,--prompt", args->prompt, "the prompt");
  auto* f = cmd->add_option("-f,--file", args->prompt_file, "read the prompt from a file");
  p->excludes(f);
  cmd->add_option("-n,--n-predict", args->n_predict, "tokens to generate; -1 = until end of generation or context")
      ->capture_default_str();
  cmd->add_flag("--no-special", args->no_special, "treat special-token text in the prompt as plain text");
  cmd->callback([args] { run(*args); });
}

}  // namespace strata::cli
