// strata chat -m MODEL [--system S] [--chat-template NAME] [-n N] [sampling flags]: a
// conversation in the model's chat template. User lines come from stdin (a "> " prompt on a
// terminal only, so it can be scripted), answers stream to stdout. The conversation stays in the
// KV cache: each turn evaluates only its new text. Ctrl-C stops the answer being generated; at
// the prompt, a second Ctrl-C in a row exits (code 130); Ctrl-D / end of input exits with 0.
// Lines starting with '/' are commands (/help, /clear, /system TEXT, /exit), not messages.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/chat_template.h"
#include "runtime/generate.h"

namespace strata::cli {
namespace {

struct ChatArgs {
  ModelOptions model;
  SamplingParams sampling;
  bool seed_given = false;
  std::string system;
  std::string chat_template;  // a family name; "" = detect from the model
  int64_t n_predict = -1;     // per answer
  bool verbose = false;
  bool ignore_eos = false;    // answers end only at -n, Ctrl-C or a full context
};

// --- Ctrl-C -------------------------------------------------------------------------------
// The handler only sets flags and writes a byte to a pipe, so that a wait for input wakes up
// whichever thread the signal was delivered to.
std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_interrupts = 0;
int g_wake[2] = {-1, -1};

extern "C" void on_sigint(int) {
  const int saved = errno;
  g_stop.store(true);
  g_interrupts = g_interrupts + 1;
  if (g_wake[1] >= 0) {
    [[maybe_unused]] const ssize_t n = ::write(g_wake[1], "!", 1);
  }
  errno = saved;
}

void drain_wake_pipe() {
  char buf[64];
  while (::read(g_wake[0], buf, sizeof buf) > 0) {
  }
}

// Installs the handler for its lifetime; restores the previous one after.
class SigintGuard {
public:
  SigintGuard() {
    if (::pipe(g_wake) != 0) fail("chat: cannot create a pipe: {}", std::strerror(errno));
    for (const int fd : g_wake) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &previous_);
  }
  ~SigintGuard() {
    ::sigaction(SIGINT, &previous_, nullptr);
    for (int& fd : g_wake) {
      ::close(fd);
      fd = -1;
    }
  }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

  static void reset() {
    drain_wake_pipe();
    g_stop.store(false);
    g_interrupts = 0;
  }

private:
  struct sigaction previous_ {};
};

// --- input --------------------------------------------------------------------------------
enum class Input { line, end, interrupted };

// Lines from stdin with read(2), so that Ctrl-C can interrupt the wait.
class LineReader {
public:
  Input next(std::string& line) {
    for (;;) {
      if (const size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return Input::line;
      }
      if (eof_) {
        if (buffer_.empty()) return Input::end;
        line = std::move(buffer_);  // a last line without a newline
        buffer_.clear();
        return Input::line;
      }
      if (g_interrupts > 0) return Input::interrupted;
      wait_and_read();
    }
  }

private:
  void wait_and_read() {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {g_wake[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) return;
      fail("chat: waiting for input: {}", std::strerror(errno));
    }
    if (fds[1].revents != 0) drain_wake_pipe();
    if (fds[0].revents == 0) return;
    char buf[4096];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) {
      buffer_.append(buf, size_t(n));
    } else if (n == 0) {
      eof_ = true;
    } else if (errno != EINTR && errno != EAGAIN) {
      fail("chat: reading standard input: {}", std::strerror(errno));
    }
  }

  std::string buffer_;
  bool eof_ = false;
};

// --- the conversation -----------------------------------------------------------------------
struct ChatState {
  LoadedModel& m;
  Session& session;
  Sampler& sampler;
  ChatHistory history;
  const ChatArgs& args;
  int turn = 0;
  int64_t answer_start = 0;  // session position where the last answer began
  // The answer's last token when generation stopped without evaluating it (at the token limit):
  // it is evaluated with the next turn's text.
  std::vector<TokenId> pending;
};

void print_text(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// Evaluates the user's turn and streams the answer; returns how generation stopped.
StopReason answer(ChatState& s, const std::string& user_line) {
  const ChatHistory::Step step = s.history.add_user(user_line);
  if (step.rewind_answer) {
    s.session.rewind(s.answer_start);
    s.pending.clear();
  }
  const int64_t reused = s.session.n_past();
  std::vector<TokenId> tokens = std::move(s.pending);
  s.pending.clear();
  const std::vector<TokenId> text_tokens = tokenize_chat_text(s.m.tokenizer, step.text, reused == 0);
  tokens.insert(tokens.end(), text_tokens.begin(), text_tokens.end());
  if (reused + int64_t(tokens.size()) >= s.session.n_ctx()) {
    fail(
        "the context is full: this turn needs {} more tokens, {} of {} are used (--ctx-size); the conversation "
        "ends here",
        tokens.size(), reused, s.session.n_ctx());
  }
  ++s.turn;
  s.answer_start = reused + int64_t(tokens.size());

  std::string raw;       // the answer as generated
  bool started = false;  // shown: leading whitespace is left out of the display
  const std::function<void(std::string_view)> on_text = [&](std::string_view text) {
    raw += text;
    if (!started) {
      const size_t begin = text.find_first_not_of(" \t\n");
      if (begin == std::string_view::npos) return;
      text.remove_prefix(begin);
      started = true;
    }
    print_text(text);
  };
  SigintGuard::reset();
  const GenerationRequest request{tokens, s.args.n_predict, &on_text, &g_stop, {}, {}, s.args.ignore_eos};
  const GenerationStats stats = generate(s.session, s.m.tokenizer, s.sampler, request);
  print_text("\n");
  s.history.add_answer(raw);
  if (stats.n_generated > 0 && s.session.n_past() == s.answer_start + stats.n_generated - 1) {
    s.pending.push_back(stats.last_token);
  }
  if (s.args.verbose) {
    auto rate = [](int64_t n, double sec) { return sec > 0 ? double(n) / sec : 0.0; };
    log_info(s.args.model,
             fmt::format("turn {}: {} new tokens evaluated ({:.1f} tok/s), {} reused from the cache{}; answer: {} "
                         "tokens ({:.1f} tok/s, {}); context {}/{}",
                         s.turn, tokens.size(), rate(stats.n_prompt, stats.prompt_seconds), reused,
                         step.rewind_answer ? " (last answer rewound)" : "", stats.n_generated,
                         rate(stats.n_generated, stats.generation_seconds), stop_reason_text(stats.stop),
                         s.session.n_past(), s.session.n_ctx()));
  }
  return stats.stop;
}

constexpr std::string_view kCommandHelp =
    "/help              this list\n"
    "/clear             forget the conversation (the system message stays)\n"
    "/system TEXT       a new system message; starts a new conversation\n"
    "/exit, /quit, /bye leave (as Ctrl-D does)\n"
    "A line starting with // sends the line from its second slash on.\n";

// A line starting with '/': a command, not a message. Returns false to leave the chat.
bool run_command(ChatState& s, std::string& system, std::string_view line) {
  const size_t space = line.find(' ');
  const std::string_view name = line.substr(0, space);
  const std::string_view rest = space == std::string_view::npos ? "" : line.substr(space + 1);
  if (name == "/exit" || name == "/quit" || name == "/bye") return false;
  if (name == "/help" || name == "/?") {
    std::fputs(kCommandHelp.data(), stderr);
  } else if (name == "/clear" || name == "/system") {
    if (name == "/system") system = std::string(rest);
    s.session.rewind(0);
    s.pending.clear();
    s.answer_start = 0;
    s.history = ChatHistory(s.history.chat_template(), system);
    log_info(s.args.model, name == "/clear" ? "[conversation cleared]" : "[new system message; conversation cleared]");
  } else {
    std::fprintf(stderr, "unknown command %.*s (/help lists them)\n", int(name.size()), name.data());
  }
  return true;
}

void chat(ChatArgs& args) {
  check_n_predict(args.n_predict, "until the end of the turn");
  validate(args.sampling);
  if (!args.seed_given) args.sampling.seed = std::random_device{}();
  LoadedModel m = load_model(args.model);
  ChatTemplate tmpl = ChatTemplate::from_model(m.model->file(), m.tokenizer, args.chat_template);
  Session session(*m.model, *m.backend, {args.model.ctx_size, kv_dtype(args.model)});
  Sampler sampler(args.sampling, int32_t(m.model->config().n_vocab));
  log_info(args.model,
           fmt::format(
               "chat template: {}{}; context {}, seed {}", tmpl.name(),
               args.system.empty() && !tmpl.default_system().empty() ? " (the template's default system message)" : "",
               session.n_ctx(), args.sampling.seed));
  const bool terminal = ::isatty(STDIN_FILENO) != 0;
  if (terminal)
    log_info(args.model, "Ctrl-C stops an answer; Ctrl-D, /exit (or Ctrl-C twice at the prompt) exits; /help");

  std::string system = args.system;
  ChatState state{m, session, sampler, ChatHistory(std::move(tmpl), system), args, 0, 0, {}};
  SigintGuard guard;
  LineReader reader;
  int idle_interrupts = 0;
  for (std::string line;;) {
    if (terminal) print_text("> ");
    const Input input = reader.next(line);
    if (input == Input::end) {
      if (terminal) print_text("\n");
      return;
    }
    if (input == Input::interrupted) {
      idle_interrupts += int(g_interrupts);
      SigintGuard::reset();
      if (idle_interrupts >= 2) {
        print_text("\n");
        throw CLI::RuntimeError(130);
      }
      std::fputs("\n(Ctrl-C again to exit, or Ctrl-D)\n", stderr);
      continue;
    }
    if (line.empty()) continue;
    idle_interrupts = 0;
    if (line.starts_with("//")) {
      line.erase(0, 1);
    } else if (line.starts_with('/')) {
      if (!run_command(state, system, line)) return;
      continue;
    }
    size_t replaced = 0;
    m.tokenizer.encode(line, false, false, &replaced);
    if (replaced > 0) log_info(args.model, replaced_warning(replaced, "this line"));
    const StopReason stop = answer(state, line);
    if (stop == StopReason::interrupted) log_info(args.model, "[answer stopped]");
    if (stop == StopReason::context_full) {
      fail("the context of {} tokens is full (--ctx-size): the conversation ends here", session.n_ctx());
    }
    SigintGuard::reset();
  }
}

}  // namespace

void register_chat(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  auto* cmd = app.add_subcommand("chat", "Chat with a model in its chat template (lines from stdin)");
  add_model_options(cmd, args->model);
  add_sampling_options(cmd, args->sampling, args->seed_given);
  cmd->add_option("--system", args->system, "system message");
  cmd->add_option("--chat-template", args->chat_template,
                  "format to use instead of the one detected: " + chat_family_names());
  cmd->add_option("-n,--n-predict", args->n_predict, "tokens per answer at most; -1 = until the end of the turn")
      ->capture_default_str();
  cmd->add_flag("--ignore-eos", args->ignore_eos,
                "never end an answer at an end-of-generation token (they are not sampled)");
  cmd->add_flag("-v,--verbose", args->verbose, "after each answer, log the tokens evaluated and reused");
  cmd->callback([args] { chat(*args); });
}

}  // namespace strata::cli
