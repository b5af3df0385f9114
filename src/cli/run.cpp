// strata run -m MODEL -p PROMPT [-n N] [sampling flags]: streams the generated text to
// stdout, then a timing summary on stderr. --chat/--system wrap the prompt in the model's chat
// template; --json prints one JSON object at the end instead of streaming.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/escapes.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/chat_template.h"
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
  bool escapes = false;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool chat = false;
  std::string system;
  std::string chat_template;
  bool json = false;
};

std::string read_prompt(const RunArgs& args) {
  if (args.prompt_file.empty()) return args.escapes ? process_escapes(args.prompt) : args.prompt;
  std::error_code ec;
  if (std::filesystem::is_directory(args.prompt_file, ec)) {
    fail("{}: is a directory; -f takes a text file with the prompt", args.prompt_file);
  }
  std::FILE* f = std::fopen(args.prompt_file.c_str(), "rb");
  if (f == nullptr) fail("{}: cannot open prompt file", args.prompt_file);
  std::string text;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) fail("{}: cannot read prompt file", args.prompt_file);
  return text;
}

// The prompt's tokens: as it is, or as the user's turn of a chat (--chat, --system).
std::vector<TokenId> prompt_tokens(const RunArgs& args, const LoadedModel& m, const std::string& text) {
  if (!args.chat) return encode_text(args.model, m.tokenizer, text, true, !args.no_special, "the prompt");
  const ChatTemplate tmpl = ChatTemplate::from_model(m.model->file(), m.tokenizer, args.chat_template);
  std::vector<ChatMessage> messages;
  const std::string& system = args.system.empty() ? tmpl.default_system() : args.system;
  if (!system.empty()) messages.push_back({"system", system});
  messages.push_back({"user", text});
  size_t replaced = 0;
  m.tokenizer.encode(text + system, false, false, &replaced);
  if (replaced > 0) log_info(args.model, replaced_warning(replaced, "the prompt"));
  log_info(args.model, fmt::format("chat template: {}", tmpl.name()));
  return tokenize_chat_text(m.tokenizer, tmpl.format(messages, true), true);
}

void print_json(const RunArgs& args, const std::string& text, const GenerationStats& stats) {
  auto rate = [](int64_t n, double s) { return s > 0 ? double(n) / s : 0.0; };
  const nlohmann::ordered_json j = {
      {"text", text},
      {"tokens", stats.tokens},
      {"stop", std::string(stop_reason_text(stats.stop))},
      {"seed", args.sampling.seed},
      {"prompt_tokens", stats.n_prompt},
      {"generated_tokens", stats.n_generated},
      {"timings",
       {{"prompt_seconds", stats.prompt_seconds},
        {"prompt_tokens_per_second", rate(stats.n_prompt, stats.prompt_seconds)},
        {"generation_seconds", stats.generation_seconds},
        {"generation_tokens_per_second", rate(stats.n_generated, stats.generation_seconds)}}},
  };
  std::printf("%s\n", j.dump().c_str());
}

void run(RunArgs& args) {
  check_n_predict(args.n_predict, "until the end of generation or of the context");
  validate(args.sampling);
  if (!args.system.empty()) args.chat = true;
  if (!args.seed_given) args.sampling.seed = std::random_device{}();
  const std::string text = read_prompt(args);
  LoadedModel m = load_model(args.model);
  const std::vector<TokenId> prompt = prompt_tokens(args, m, text);
  const SessionOptions options{
      .n_ctx = args.model.ctx_size, .kv_type = kv_dtype(args.model), .n_batch = int64_t(prompt.size())};
  Session session(*m.model, *m.backend, options);
  if (int64_t(prompt.size()) >= session.n_ctx()) {
    fail("the prompt is {} tokens, the context holds {} (--ctx-size): it leaves no room to generate", prompt.size(),
         session.n_ctx());
  }
  log_info(args.model, fmt::format("prompt: {} tokens, context {}, KV cache {} ({:.1f} MiB), seed {}", prompt.size(),
                                   session.n_ctx(), args.model.kv_type, double(session.kv_bytes()) / (1 << 20),
                                   args.sampling.seed));
  Sampler sampler(args.sampling, int32_t(m.model->config().n_vocab));
  std::string output;  // --json: collected instead of streamed
  const std::function<void(std::string_view)> print = [&](std::string_view piece) {
    if (args.json) {
      output += piece;
      return;
    }
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  GenerationRequest request{prompt, args.n_predict, &print, nullptr, {}, args.stop, args.ignore_eos};
  if (!args.model.dump_dir.empty()) request.tap = dump_tap(*m.backend, args.model.dump_dir);
  const GenerationStats stats = generate(session, m.tokenizer, sampler, request);
  if (args.json) {
    print_json(args, output, stats);
  } else {
    std::fputc('\n', stdout);
  }
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
  cmd->add_flag("-e,--escape", args->escapes, "read \\n, \\t, \\\\, \\xHH ... in -p as the characters they name");
  cmd->add_option("-n,--n-predict", args->n_predict, "tokens to generate; -1 = until end of generation or context")
      ->capture_default_str();
  cmd->add_option("--stop", args->stop, "stop where the text contains STR (repeatable); STR is not printed")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_flag("--ignore-eos", args->ignore_eos, "never end at an end-of-generation token (they are not sampled)");
  cmd->add_flag("--chat", args->chat, "the prompt is a user's message: apply the model's chat template");
  cmd->add_option("--system", args->system, "system message (implies --chat)");
  cmd->add_option("--chat-template", args->chat_template,
                  "with --chat: the format to use instead of the one detected: " + chat_family_names());
  cmd->add_flag("--json", args->json, "print one line of JSON at the end: text, tokens, stop reason, seed, timings");
  cmd->add_flag("--no-special", args->no_special, "treat special-token text in the prompt as plain text");
  cmd->callback([args] { run(*args); });
}

}  // namespace strata::cli
