// strata tokenize -m FILE [--no-bos] [--ids] [--no-special]: standard input (all of it, as
// one string) -> the model's token ids. Default output: one line per token, `id 'piece'`,
// the piece escaped so that each token stays on its line; --ids: the ids on one line.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "gguf/reader.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  bool no_bos = false;
  bool ids_only = false;
  bool no_special = false;
};

// A piece as text on one line: valid UTF-8 as it is, except \\, ', and control characters,
// which are escaped, as are bytes that are not (yet) UTF-8.
std::string escape_piece(std::string_view piece) {
  std::string out;
  for (size_t pos = 0; pos < piece.size();) {
    const size_t n = unicode::valid_sequence_length(piece, pos);
    const auto c = uint8_t(piece[pos]);
    if (n > 1) {
      out.append(piece.substr(pos, n));
      pos += n;
      continue;
    }
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case '\'': out += "\\'"; break;
      default:
        if (n == 1 && c >= 0x20 && c != 0x7F) out += char(c);
        else out += fmt::format("\\x{:02x}", c);
    }
    pos += 1;
  }
  return out;
}

void run_tokenize(const TokenizeArgs& args) {
  const std::string path = resolve_model_path(args.model);
  const auto file = gguf::File::open(path);
  const auto tokenizer = Tokenizer::from_gguf(file);
  for (const auto& w : tokenizer.warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());

  std::ios::sync_with_stdio(false);
  const std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  size_t replaced = 0;
  const auto ids = tokenizer.encode(text, !args.no_bos, !args.no_special, &replaced);
  if (replaced > 0) std::fprintf(stderr, "%s\n", replaced_warning(replaced, "the input").c_str());

  std::string out;
  if (args.ids_only) {
    for (size_t i = 0; i < ids.size(); ++i) out += fmt::format("{}{}", i ? " " : "", ids[i]);
    out += '\n';
  } else {
    for (TokenId id : ids) out += fmt::format("{} '{}'\n", id, escape_piece(tokenizer.token_to_piece(id)));
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "Tokenize standard input with a model's tokenizer");
  cmd->add_option("-m,--model", args->model, "GGUF file (a vocab-only file is enough; default: the default model)");
  cmd->add_flag("--no-bos", args->no_bos, "Add no BOS/EOS token even if the model asks for them");
  cmd->add_flag("--ids", args->ids_only, "Print only the ids, space-separated on one line");
  cmd->add_flag("--no-special", args->no_special, "Tokenize text such as <|im_start|> as plain text");
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace strata::cli
