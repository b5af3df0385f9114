#include "runtime/chat_template.h"

#include <array>

#include "core/error.h"
#include "gguf/reader.h"

namespace strata {
namespace {

struct FamilyInfo {
  ChatFamily family;
  std::string_view name;
  std::string_view markers;  // for messages: what detect_chat_family looks for
};

constexpr std::array<FamilyInfo, 7> kFamilies = {{
    {ChatFamily::chatml, "chatml", "<|im_start|>"},
    {ChatFamily::llama2, "llama2", "[INST] with <<SYS>>"},
    {ChatFamily::llama3, "llama3", "<|start_header_id|>"},
    {ChatFamily::mistral, "mistral", "[INST] without <<SYS>>"},
    {ChatFamily::zephyr, "zephyr", "<|user|> and <|assistant|> with eos_token or </s>"},
    {ChatFamily::phi3, "phi3", "<|user|> with <|end|>"},
    {ChatFamily::gemma, "gemma", "<start_of_turn>"},
}};

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}
bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Python's str.strip() (Jinja's trim filter) for ASCII whitespace.
std::string_view strip(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\v\f";
  const size_t begin = s.find_first_not_of(ws);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(ws) + 1 - begin);
}

// The unescaped text of a Jinja string literal's contents (\n, \t, \\, \', \").
std::string unescape_literal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
  }
  return out;
}

// The conversation split as every template sees it: an optional leading system message, then
// turns that alternate user, assistant, user, ...
struct Conversation {
  std::optional<std::string_view> system;
  std::span<const ChatMessage> turns;
};

Conversation split(std::span<const ChatMessage> messages) {
  Conversation c{std::nullopt, messages};
  if (!messages.empty() && messages[0].role == "system") {
    c.system = messages[0].content;
    c.turns = messages.subspan(1);
  }
  for (size_t i = 0; i < c.turns.size(); ++i) {
    const std::string& role = c.turns[i].role;
    const char* expected = i % 2 == 0 ? "user" : "assistant";
    if (role != expected) {
      fail(
          "chat message {}: role '{}' where '{}' was expected (a system message may only come first; then "
          "user and assistant alternate, user first)",
          i + (c.system ? 1 : 0) + 1, role, expected);
    }
  }
  return c;
}

bool is_user(const ChatMessage& m) {
  return m.role == "user";
}

std::string format_chatml(const Conversation& c, const std::string& default_system, bool gen) {
  std::string out;
  auto turn = [&](std::string_view role, std::string_view content) {
    out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
  };
  if (c.system) {
    turn("system", *c.system);
  } else if (!default_system.empty() && !c.turns.empty()) {
    turn("system", default_system);
  }
  for (const ChatMessage& m : c.turns) turn(m.role, m.content);
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

std::string format_llama2(const Conversation& c, const std::string& bos, const std::string& eos) {
  std::string out;
  for (size_t i = 0; i < c.turns.size(); ++i) {
    std::string content = c.turns[i].content;
    if (i == 0 && c.system) content = "<<SYS>>\n" + std::string(*c.system) + "\n<</SYS>>\n\n" + content;
    if (is_user(c.turns[i])) {
      out.append(bos).append("[INST] ").append(strip(content)).append(" [/INST]");
    } else {
      out.append(" ").append(strip(content)).append(" ").append(eos);
    }
  }
  return out;  // the generation prompt is implicit: the assistant's text follows [/INST]
}

std::string format_llama3(std::span<const ChatMessage> messages, const std::string& bos, bool gen) {
  std::string out;
  if (!messages.empty()) out += bos;
  for (const ChatMessage& m : messages) {
    out.append("<|start_header_id|>").append(m.role).append("<|end_header_id|>\n\n");
    out.append(strip(m.content)).append("<|eot_id|>");
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string format_mistral(const Conversation& c, const std::string& bos, const std::string& eos) {
  std::string out = bos;
  for (size_t i = 0; i < c.turns.size(); ++i) {
    if (is_user(c.turns[i])) {
      out += " [INST] ";
      if (i == 0 && c.system) out.append(*c.system).append("\n\n");
      out.append(c.turns[i].content).append(" [/INST]");
    } else {
      out.append(" ").append(c.turns[i].content).append(eos);
    }
  }
  return out;  // implicit generation prompt, as llama2
}

// Zephyr and Phi-3: <|role|>\ncontent END\n, with END = eos + "\n" or "<|end|>\n".
std::string format_role_tags(std::span<const ChatMessage> messages, std::string_view end, bool gen,
                             std::string_view closing) {
  std::string out;
  for (const ChatMessage& m : messages) {
    if (m.role == "system" && m.content.empty()) continue;
    out.append("<|").append(m.role).append("|>\n").append(m.content).append(end);
  }
  if (gen && !messages.empty()) out += "<|assistant|>\n";
  if (!gen) out += closing;
  return out;
}

std::string format_gemma(const Conversation& c, const std::string& bos, bool gen) {
  std::string out = bos;
  for (size_t i = 0; i < c.turns.size(); ++i) {
    out.append("<start_of_turn>").append(is_user(c.turns[i]) ? "user" : "model").append("\n");
    if (i == 0 && c.system) out.append(*c.system).append("\n\n");
    out.append(strip(c.turns[i].content)).append("<end_of_turn>\n");
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

}  // namespace

std::string_view chat_family_name(ChatFamily family) {
  for (const FamilyInfo& f : kFamilies) {
    if (f.family == family) return f.name;
  }
  return "?";
}

std::optional<ChatFamily> chat_family_from_name(std::string_view name) {
  for (const FamilyInfo& f : kFamilies) {
    if (f.name == name) return f.family;
  }
  return std::nullopt;
}

std::string chat_family_names() {
  std::string out;
  for (const FamilyInfo& f : kFamilies) out.append(out.empty() ? "" : ", ").append(f.name);
  return out;
}

std::string chat_family_markers() {
  std::string out;
  for (const FamilyInfo& f : kFamilies) {
    out.append(out.empty() ? "" : ", ").append(f.markers).append(" (").append(f.name).append(")");
  }
  return out;
}

std::optional<ChatFamily> detect_chat_family(std::string_view t) {
  // Most specific first: Llama 3 and ChatML templates may mention other families' tokens.
  if (contains(t, "<|start_header_id|>")) return ChatFamily::llama3;
  if (contains(t, "<|im_start|>") && !contains(t, "<|im_sep|>")) return ChatFamily::chatml;  // Phi-4 differs
  if (contains(t, "<start_of_turn>")) return ChatFamily::gemma;
  if (contains(t, "[INST]")) return contains(t, "<<SYS>>") ? ChatFamily::llama2 : ChatFamily::mistral;
  if (contains(t, "<|user|>") && contains(t, "<|end|>")) return ChatFamily::phi3;
  if (contains(t, "<|user|>") && contains(t, "<|assistant|>") && (contains(t, "eos_token") || contains(t, "</s>"))) {
    return ChatFamily::zephyr;
  }
  return std::nullopt;
}

std::string chatml_default_system(std::string_view jinja) {
  constexpr std::string_view open = "<|im_start|>system", close = "<|im_end|>";
  for (size_t at = jinja.find(open); at != std::string_view::npos; at = jinja.find(open, at + 1)) {
    size_t begin = at + open.size();
    if (starts_with(jinja.substr(begin), "\n")) {
      begin += 1;
    } else if (starts_with(jinja.substr(begin), "\\n")) {
      begin += 2;
    } else {
      continue;
    }
    const size_t end = jinja.find(close, begin);
    if (end == std::string_view::npos) break;
    const std::string_view literal = jinja.substr(begin, end - begin);
    // Only a plain literal: no quote, expression or statement in between.
    if (!literal.empty() && literal.find_first_of("'\"{}%+") == std::string_view::npos) {
      return unescape_literal(literal);
    }
  }
  return {};
}

ChatTemplate::ChatTemplate(ChatFamily family, std::string bos, std::string eos, std::string default_system)
    : family_(family), bos_(std::move(bos)), eos_(std::move(eos)), default_system_(std::move(default_system)) {}

ChatTemplate ChatTemplate::from_jinja(std::string_view jinja, std::string_view forced, std::string bos, std::string eos,
                                      std::string_view where) {
  std::optional<ChatFamily> family;
  if (!forced.empty()) {
    family = chat_family_from_name(forced);
    if (!family) fail("--chat-template: unknown format '{}'; the formats are: {}", forced, chat_family_names());
  } else if (strip(jinja).empty()) {
    fail(
        "{}: the model has no chat template (tokenizer.chat_template); choose a format with --chat-template NAME "
        "({})",
        where, chat_family_names());
  } else {
    family = detect_chat_family(jinja);
    if (!family) {
      fail(
          "{}: chat template not recognised: it contains none of the markers strata knows: {}; choose a format "
          "with --chat-template NAME ({})",
          where, chat_family_markers(), chat_family_names());
    }
  }
  std::string default_system = *family == ChatFamily::chatml ? chatml_default_system(jinja) : std::string();
  return ChatTemplate(*family, std::move(bos), std::move(eos), std::move(default_system));
}

ChatTemplate ChatTemplate::from_model(const gguf::File& file, const Tokenizer& tokenizer, std::string_view forced) {
  std::string_view jinja;
  if (const gguf::Value* v = file.find("tokenizer.chat_template")) {
    jinja = v->as_string(file.name() + ": tokenizer.chat_template");
  }
  // A Gemma 3 file without a template (the converter leaves it out of some): the format Gemma 3
  // is trained on.
  const gguf::Value* arch = file.find("general.architecture");
  if (strip(jinja).empty() && forced.empty() && arch != nullptr &&
      arch->as_string("general.architecture") == "gemma3") {
    forced = "gemma";
  }
  const Vocab& vocab = tokenizer.vocab();
  auto piece = [&](TokenId id) { return vocab.valid_id(id) ? tokenizer.token_to_piece(id) : std::string(); };
  return from_jinja(jinja, forced, piece(vocab.bos), piece(vocab.eos), file.name());
}

std::string ChatTemplate::format(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  const Conversation c = split(messages);
  switch (family_) {
    case ChatFamily::chatml:
      return format_chatml(c, default_system_, add_generation_prompt);
    case ChatFamily::llama2:
      return format_llama2(c, bos_, eos_);
    case ChatFamily::llama3:
      return format_llama3(messages, bos_, add_generation_prompt);
    case ChatFamily::mistral:
      return format_mistral(c, bos_, eos_);
    case ChatFamily::zephyr:
      return format_role_tags(messages, eos_ + "\n", add_generation_prompt, "");
    case ChatFamily::phi3:
      return format_role_tags(messages, "<|end|>\n", add_generation_prompt, eos_);
    case ChatFamily::gemma:
      return format_gemma(c, bos_, add_generation_prompt);
  }
  fail("chat template: unknown family {}", int(family_));
}

ChatHistory::ChatHistory(ChatTemplate chat_template, std::string system) : template_(std::move(chat_template)) {
  if (!system.empty()) messages_.push_back({"system", std::move(system)});
}

ChatHistory::Step ChatHistory::add_user(std::string content) {
  messages_.push_back({"user", std::move(content)});
  std::string target;
  try {
    target = template_.format(messages_, true);
  } catch (const Error&) {
    messages_.pop_back();
    throw;
  }
  Step step;
  if (starts_with(target, cached_)) {
    step.text = target.substr(cached_.size());
  } else if (starts_with(target, answer_start_)) {
    step.rewind_answer = true;
    step.text = target.substr(answer_start_.size());
  } else {
    messages_.pop_back();
    fail("chat template {}: formatting the conversation again changed earlier turns", template_.name());
  }
  cached_ = answer_start_ = std::move(target);
  return step;
}

void ChatHistory::add_answer(std::string_view text) {
  // The answer as the template will write it: as generated if that reproduces the cache,
  // else trimmed (templates that trim, or put a space before the answer, as Mistral's does,
  // where the model generated that space itself).
  const std::string cached = cached_ + std::string(text);
  std::string content(strip(text));
  for (const std::string_view candidate : {text, strip(text)}) {
    std::vector<ChatMessage> closed = messages_;
    closed.push_back({"assistant", std::string(candidate)});
    if (starts_with(template_.format(closed, false), cached)) {
      content = candidate;
      break;
    }
  }
  messages_.push_back({"assistant", std::move(content)});
  cached_ = cached;  // if no candidate matched, the next add_user rewinds the answer
}

std::vector<TokenId> tokenize_chat_text(const Tokenizer& tokenizer, std::string_view text, bool at_start) {
  std::vector<TokenId> tokens = tokenizer.encode(text, /*add_special=*/false, /*parse_special=*/true);
  const Vocab& vocab = tokenizer.vocab();
  if (at_start && vocab.add_bos && vocab.valid_id(vocab.bos) &&
      !starts_with(text, tokenizer.token_to_piece(vocab.bos))) {
    tokens.insert(tokens.begin(), vocab.bos);
  }
  return tokens;
}

}  // namespace strata
