// Chat templates: the prompt format of a chat model. Strata has no Jinja engine: it recognises
// the family of the model's template (the Jinja text in tokenizer.chat_template) by markers
// that only that family writes, and formats conversations with its own code for that family,
// tested against what the real templates produce (tests/data/chat_templates).
//
//   auto tmpl = ChatTemplate::from_model(model.file(), tokenizer, "");   // "" = detect
//   std::string prompt = tmpl.format(messages, true);                   // ends with the assistant's header
//
// ChatHistory adds what a chat loop needs: the text to evaluate for each new user turn, so that
// the KV cache keeps the earlier turns and only the new text is evaluated.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace strata::gguf {
class File;
}

namespace strata {

// What each family writes (U: user, A: assistant, S: system, <bos>/<eos>: the model's tokens):
//   chatml   <|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n
//            (SmolLM2, Qwen, ...; a default system message in the template is used when S is absent)
//   llama2   <bos>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A <eos><bos>[INST] U2 [/INST]
//   llama3   <bos><|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>...assistant<|end_header_id|>\n\n
//   mistral  <bos> [INST] S\n\nU [/INST] A<eos> [INST] U2 [/INST]   (Mistral-7B-Instruct-v0.2's template)
//   zephyr   <|user|>\nU<eos>\n<|assistant|>\n                      (Zephyr, TinyLlama chat)
//   phi3     <|user|>\nU<|end|>\n<|assistant|>\n
//   gemma    <bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n   (Gemma 3's system prefix)
enum class ChatFamily { chatml, llama2, llama3, mistral, zephyr, phi3, gemma };

std::string_view chat_family_name(ChatFamily family);
std::optional<ChatFamily> chat_family_from_name(std::string_view name);
std::string chat_family_names();  // "chatml, llama2, ..." for messages

// The family whose markers `jinja` contains, or nullopt.
std::optional<ChatFamily> detect_chat_family(std::string_view jinja);
// The markers detection looks for, for error messages.
std::string chat_family_markers();
// The system message a ChatML template writes when the conversation has none, as in SmolLM2's
// and Qwen2.5's templates ('<|im_start|>system\nDEFAULT<|im_end|>\n' as a string literal); "" if none.
std::string chatml_default_system(std::string_view jinja);

struct ChatMessage {
  std::string role;  // system (first message only), user or assistant (alternating, user first)
  std::string content;
};

class ChatTemplate {
public:
  // `bos`/`eos`: the text of the model's BOS/EOS tokens ("" if it has none).
  ChatTemplate(ChatFamily family, std::string bos, std::string eos, std::string default_system = {});

  // From template text (empty: the model has none). `forced`: a family name that overrides
  // detection, or "" to detect. Throws naming `where` when there is no template or it is not
  // recognised (the message lists the markers and the names --chat-template takes).
  static ChatTemplate from_jinja(std::string_view jinja, std::string_view forced, std::string bos, std::string eos,
                                 std::string_view where);
  // From a model: tokenizer.chat_template, and the BOS/EOS texts of its tokenizer.
  static ChatTemplate from_model(const gguf::File& file, const Tokenizer& tokenizer, std::string_view forced);

  ChatFamily family() const { return family_; }
  std::string_view name() const { return chat_family_name(family_); }
  const std::string& default_system() const { return default_system_; }

  // The prompt text of a conversation, as the family's Jinja template renders it.
  // add_generation_prompt: end with the header of the assistant's next turn. Throws if the
  // roles are not [system] user assistant user ...
  std::string format(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

private:
  ChatFamily family_;
  std::string bos_;
  std::string eos_;
  std::string default_system_;
};

// A conversation, and which part of its formatted text the KV cache already holds.
//   Step s = history.add_user(line);   // evaluate s.text (after rewinding, if s.rewind_answer)
//   ... generate the answer ...
//   history.add_answer(answer_text);   // what was generated after s.text
class ChatHistory {
public:
  explicit ChatHistory(ChatTemplate chat_template, std::string system = {});

  struct Step {
    // The template writes the last answer differently from how it was generated (e.g. it
    // trims it): the cache must first drop everything after the previous step's text.
    bool rewind_answer = false;
    std::string text;  // to evaluate next: the end of the last answer's turn, the user's turn, the assistant's header
  };
  // Adds a user message; throws (leaving the history as it was) if formatting it would change
  // text that is already in the cache.
  Step add_user(std::string content);
  // Records the answer that followed the last step's text (as generated: decoded tokens).
  void add_answer(std::string_view text);

  const ChatTemplate& chat_template() const { return template_; }
  const std::vector<ChatMessage>& messages() const { return messages_; }
  const std::string& cached_text() const { return cached_; }  // what the KV cache holds, as text

private:
  ChatTemplate template_;
  std::vector<ChatMessage> messages_;
  std::string cached_;        // the formatted text in the cache
  std::string answer_start_;  // the cache up to the last step's text (where the last answer began)
};

// Tokens of chat text: special-token text (<|im_start|>, <s>, ...) becomes those tokens. At the
// start of the sequence BOS is added when the model asks for it, unless the text itself begins
// with the BOS token's text (many templates write it), so that it is never there twice.
std::vector<TokenId> tokenize_chat_text(const Tokenizer& tokenizer, std::string_view text, bool at_start);

}  // namespace strata
