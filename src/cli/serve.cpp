// strata serve -m MODEL [--host H] [--port P] [--parallel N] [-c CTX] [--api-key KEY]: the
// OpenAI-compatible HTTP server (src/server). Prints the listening address on stdout and the KV
// budget on stderr; SIGINT/SIGTERM stop accepting, cancel what is in flight and exit 0.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "runtime/memory_plan.h"
#include "runtime/session.h"
#include "server/server.h"

namespace strata::cli {
namespace {

struct ServeArgs {
  ModelOptions model;
  SamplingParams sampling;
  bool seed_given = false;
  std::string host = "127.0.0.1";
  int port = 8080;
  int64_t parallel = 4;
  std::string api_key;
  int64_t kv_tokens = 0;
  int64_t batch = 512;
  int64_t queue = 64;
  std::string alias;
  std::string chat_template;
  size_t max_body = size_t(8) << 20;
  int http_threads = 0;
};

// SIGINT and SIGTERM are taken by a thread of their own (sigtimedwait), so that the handler
// may do anything; they must be blocked before any other thread starts (threads inherit the mask).
void block_stop_signals(sigset_t& set) {
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that disconnects makes a write fail, not the process die
}

class SignalWatcher {
public:
  SignalWatcher(const sigset_t& set, std::function<void()> on_signal)
      : set_(set), on_signal_(std::move(on_signal)), thread_([this] { loop(); }) {}
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
  }

private:
  void loop() {
    const timespec poll{0, 100'000'000};
    while (!done_) {
      if (sigtimedwait(&set_, nullptr, &poll) > 0) on_signal_();
    }
  }

  sigset_t set_;
  std::function<void()> on_signal_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

server::ServedModel served_model(const ServeArgs& a, const LoadedModel& m, const std::string& path,
                                 const ChatTemplate* tmpl, std::string no_template_reason, int64_t n_ctx) {
  const std::filesystem::path p(path);
  server::ServedModel s;
  s.id = a.alias.empty() ? p.filename().string() : a.alias;
  s.names = {s.id, path, p.filename().string(), p.stem().string()};
  s.tokenizer = &m.tokenizer;
  s.chat_template = tmpl;
  s.no_template_reason = std::move(no_template_reason);
  s.n_ctx = n_ctx;
  s.n_vocab = m.model->config().n_vocab;
  return s;
}

void serve(const ServeArgs& a) {
  validate(a.sampling);
  if (a.parallel < 1) fail("--parallel must be >= 1, got {}", a.parallel);
  sigset_t stop_signals;
  block_stop_signals(stop_signals);
  // Until the server runs, a signal just ends the process.
  std::optional<SignalWatcher> early(std::in_place, stop_signals, [] { std::_Exit(130); });

  const std::string path = resolve_model_path(a.model.model);
  LoadedModel m = load_model(a.model);
  std::optional<ChatTemplate> tmpl;
  std::string no_template;
  try {
    tmpl = ChatTemplate::from_model(m.model->file(), m.tokenizer, a.chat_template);
    log_info(a.model, fmt::format("chat template: {}", tmpl->name()));
  } catch (const Error& e) {
    if (!a.chat_template.empty()) throw;
    no_template =
        fmt::format("chat completions are not available: {} (start the server with --chat-template NAME)", e.what());
    log_info(a.model, "warning: " + no_template);
  }
  const ModelConfig& config = m.model->config();
  const EngineOptions eo{.n_ctx = default_context(config, a.model.ctx_size),
                         .n_parallel = a.parallel,
                         .kv_tokens = a.kv_tokens,
                         .n_batch = a.batch,
                         .max_queued = a.queue,
                         .kv_type = kv_dtype(a.model)};
  Engine engine(*m.model, *m.backend, m.tokenizer, eo);

  server::ServerOptions so{.host = a.host,
                           .port = a.port,
                           .api_key = a.api_key,
                           .max_body_bytes = a.max_body,
                           .http_threads = a.http_threads,
                           .defaults = a.sampling,
                           .seed_fixed = a.seed_given};
  server::Server server(engine, served_model(a, m, path, tmpl ? &*tmpl : nullptr, no_template, eo.n_ctx), so);
  const int port = server.bind();

  const EngineStats stats = engine.stats();
  const int64_t kv_tokens = stats.kv_blocks_total * eo.block_tokens;
  const size_t kv_bytes = session_memory(config, kv_tokens, eo.kv_type, 1).kv_cache;
  log_info(a.model, fmt::format("KV cache: {} tokens ({} blocks of {}), {:.1f} MiB ({}); context {} per sequence, "
                                "{} in parallel, {} queued at most",
                                kv_tokens, stats.kv_blocks_total, eo.block_tokens, double(kv_bytes) / (1 << 20),
                                a.model.kv_type, eo.n_ctx, eo.n_parallel, eo.max_queued));
  early.reset();
  SignalWatcher signals(stop_signals, [&] {
    log_info(a.model, "stopping: no new requests; cancelling those in flight");
    server.shutdown();
  });
  std::printf("listening on http://%s:%d\n", a.host.c_str(), port);
  std::fflush(stdout);
  if (!server.run()) throw CLI::RuntimeError(1);
  log_info(a.model, "stopped");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat and text completions)");
  add_model_options(cmd, args->model);
  add_sampling_options(cmd, args->sampling, args->seed_given);
  cmd->add_option("--host", args->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", args->port, "port to listen on; 0 = any free port")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--parallel", args->parallel, "sequences generated at once (-np)")
      ->check(CLI::Range(int64_t(1), int64_t(4096)))
      ->capture_default_str();
  cmd->add_option("--api-key", args->api_key, "require `Authorization: Bearer KEY` (all routes but /health)");
  cmd->add_option("--kv-tokens", args->kv_tokens, "KV cache budget in tokens over all sequences; 0 = ctx * parallel")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 32))
      ->capture_default_str();
  cmd->add_option("--batch", args->batch, "most tokens in one forward pass (prompt chunks and decode tokens)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->capture_default_str();
  cmd->add_option("--queue", args->queue, "requests waiting beyond this are refused with 429")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20))
      ->capture_default_str();
  cmd->add_option("--alias", args->alias, "the model's name in /v1/models (default: the file name)");
  cmd->add_option("--chat-template", args->chat_template,
                  "the chat format to use instead of the one detected: " + chat_family_names());
  cmd->add_option("--max-body", args->max_body, "largest request body in bytes (larger: 413)")
      ->check(CLI::Range(size_t(1024), size_t(1) << 30))
      ->capture_default_str();
  cmd->add_option("--http-threads", args->http_threads, "connections served at once; 0 = parallel + queue + 16")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  cmd->callback([args] { serve(*args); });
}

}  // namespace strata::cli
