#include "cli/llama_flags.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "core/error.h"

namespace strata::cli {
namespace {

enum class Action {
  rewrite,  // written as `to` (with the value if it takes one)
  drop,     // means nothing here (strata already behaves so)
  refuse,   // an error naming `to` as what to do instead
  gpu_layers,
};

struct Rule {
  std::initializer_list<std::string_view> names;
  bool takes_value;
  Action action;
  std::string_view to;
  std::initializer_list<std::string_view> commands = {};  // empty: every command
};

const Rule kRules[] = {
    {{"-ngl", "--n-gpu-layers", "--gpu-layers"}, true, Action::gpu_layers, ""},
    {{"-ctk", "--cache-type-k", "-ctv", "--cache-type-v"}, true, Action::rewrite, "--kv-type"},
    {{"-sys", "--system-prompt"}, true, Action::rewrite, "--system"},
    {{"-r", "--reverse-prompt"}, true, Action::rewrite, "--stop", {"run"}},  // bench's -r is --reps
    {{"--log-disable"}, false, Action::rewrite, "-q"},
    {{"-np", "--n-parallel"}, true, Action::rewrite, "--parallel", {"serve"}},
    {{"-tp"}, true, Action::rewrite, "--tensor-parallel"},
    {{"-no-cnv", "--no-conversation", "--no-display-prompt", "--no-warmup", "--jinja", "--color", "-co", "--simple-io",
      "--no-perf"},
     false,
     Action::drop,
     ""},
    {{"-hf", "-hfr", "--hf-repo", "-hff", "--hf-file", "-hft", "--hf-token", "-hfd", "-hfrd", "--hf-repo-draft", "-mu",
      "--model-url", "-dr", "--docker-repo"},
     true,
     Action::refuse,
     "strata runs local GGUF files: download one with `strata pull hf://ORG/REPO/FILE.gguf` (or a URL) and pass it "
     "with -m FILE"},
    {{"-cnv", "--conversation", "-i", "--interactive", "-if", "--interactive-first", "-st", "--single-turn"},
     false,
     Action::refuse,
     "for a conversation use `strata chat`"},
    {{"-fa", "--flash-attn"}, false, Action::refuse, "strata's attention is always fused: leave the flag out"},
    {{"-b", "--batch-size", "-ub", "--ubatch-size"},
     true,
     Action::refuse,
     "strata evaluates a prompt in one pass: leave the flag out"},
    {{"--mlock", "--no-mmap", "--mmap", "--numa"},
     false,
     Action::refuse,
     "strata maps the model file read-only and has no memory flags: leave the flag out"},
    {{"-dev", "--device"}, true, Action::refuse, "choose the device with --backend cpu|cuda"},
    {{"-sm", "--split-mode", "-ts", "--tensor-split", "-mg", "--main-gpu"},
     true,
     Action::refuse,
     "strata runs a model on one device (--backend cpu|cuda) or splits it by heads over several "
     "(--tensor-parallel N)"},
    {{"-tb", "--threads-batch"}, true, Action::refuse, "-t sets the threads of prompt and generation alike"},
    {{"-ot", "--override-tensor"}, true, Action::refuse, "strata places every tensor on the --backend device"},
    {{"--mirostat", "--typical", "--dry-multiplier", "--xtc-probability", "--top-nsigma", "--samplers",
      "--dynatemp-range"},
     true,
     Action::refuse,
     "strata's samplers are --temp, --top-k, --top-p, --min-p, --repeat-penalty, --frequency-penalty and "
     "--presence-penalty"},
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out.append(out.empty() ? "" : ", ").append(n);
  return out;
}

const Rule* find_rule(std::string_view name, std::string_view command) {
  for (const Rule& r : kRules) {
    if (std::find(r.names.begin(), r.names.end(), name) == r.names.end()) continue;
    if (r.commands.size() != 0 && std::find(r.commands.begin(), r.commands.end(), command) == r.commands.end()) {
      continue;
    }
    return &r;
  }
  return nullptr;
}

// -ngl N: 0 keeps the model on the CPU, anything else puts all of it on the GPU.
std::string_view backend_for_gpu_layers(std::string_view flag, std::string_view value) {
  long long n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc{} || end != value.data() + value.size() || n < -1) {
    fail("{} takes a number of layers, got '{}' (strata runs all layers on one device: --backend cpu|cuda)", flag,
         value);
  }
  return n == 0 ? "cpu" : "cuda";
}

void check_command(const std::vector<std::string>& args, const std::vector<std::string>& commands) {
  const std::string usage = "strata COMMAND [options], with COMMAND one of " + join(commands);
  if (args.empty()) fail("a command is required: {} (strata --help for more)", usage);
  const std::string& first = args[0];
  if (first == "-h" || first == "--help" || first == "--version") return;
  if (first.starts_with("-")) fail("the command comes first: {} (e.g. strata run {} ...)", usage, first);
  if (std::find(commands.begin(), commands.end(), first) == commands.end()) {
    fail("unknown command '{}': the commands are {} (strata --help for more)", first, join(commands));
  }
}

}  // namespace

std::vector<std::string> translate_llama_flags(std::vector<std::string> args,
                                               const std::vector<std::string>& commands) {
  if (!args.empty() && args[0] == "help") args[0] = "--help";
  check_command(args, commands);
  const std::string command = args[0];
  std::vector<std::string> out = {command};
  std::string kv_type;  // -ctk and -ctv both become --kv-type: they must agree
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      out.insert(out.end(), args.begin() + std::ptrdiff_t(i), args.end());
      break;
    }
    const size_t eq = arg.starts_with("--") ? arg.find('=') : std::string::npos;
    const std::string name = arg.substr(0, eq);
    const Rule* rule = find_rule(name, command);
    if (rule == nullptr) {
      out.push_back(arg);
      continue;
    }
    if (rule->action == Action::refuse) fail("{} is a llama.cpp flag that strata does not take: {}", name, rule->to);
    if (rule->action == Action::drop) continue;
    std::string value;
    if (rule->takes_value) {
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        fail("{} needs a value", name);
      }
    }
    if (rule->action == Action::gpu_layers) {
      out.insert(out.end(), {"--backend", std::string(backend_for_gpu_layers(name, value))});
      continue;
    }
    if (rule->to == "--kv-type") {
      if (!kv_type.empty() && kv_type != value) {
        fail("strata's KV cache has one type for keys and values: {} {} disagrees with {}; use --kv-type", name, value,
             kv_type);
      }
      if (!kv_type.empty()) continue;
      kv_type = value;
    }
    out.emplace_back(rule->to);
    if (rule->takes_value) out.push_back(value);
  }
  return out;
}

}  // namespace strata::cli
