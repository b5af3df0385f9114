// Chat templates: detection from real template texts, formatting compared with what the real
// Jinja templates render (tests/data/chat_templates, made by make_chat_template_cases.py with
// Python jinja2), incremental turns, and BOS handling.
#include "runtime/chat_template.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "gguf/reader.h"

namespace strata {
namespace {

const std::string kDir = std::string(STRATA_TEST_DATA) + "/chat_templates/";

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Keep in step with CONVERSATIONS in make_chat_template_cases.py.
struct Conversation {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt;
};
const std::map<std::string, Conversation>& conversations() {
  static const std::map<std::string, Conversation> c = {
      {"system",
       {{{"system", "You are a friendly chatbot."},
         {"user", "Hello, how are you?"},
         {"assistant", "I'm doing great. How can I help you today?"},
         {"user", "I'd like to show off how chat templating works!"}},
        true}},
      {"no_system",
       {{{"user", "Hello, how are you?"},
         {"assistant", "I'm doing great. How can I help you today?"},
         {"user", "Tell me a joke."}},
        true}},
      {"spaces",
       {{{"system", "  Be brief.\n"}, {"user", " Hi there  "}, {"assistant", "\nHello! "}, {"user", "Bye\n"}}, true}},
      {"closed", {{{"system", "S"}, {"user", "Q?"}, {"assistant", "A."}}, false}},
  };
  return c;
}

struct Case {
  std::string template_name, family, bos, eos, conversation, expected;
};

std::vector<Case> read_cases() {
  std::vector<Case> cases;
  std::istringstream in(read_file(kDir + "cases.tsv"));
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string field; std::getline(fields, field, '\t');) f.push_back(field);
    if (f.size() != 6) throw std::runtime_error("cases.tsv: bad line: " + line);
    cases.push_back({f[0], f[1], f[2] == "-" ? "" : f[2], f[3], f[4], f[5]});
  }
  return cases;
}

ChatTemplate template_for(const Case& c) {
  return ChatTemplate::from_jinja(read_file(kDir + c.template_name + ".jinja"), "", c.bos, c.eos, c.template_name);
}

TEST(ChatTemplate, DetectsTheFamilyOfRealTemplates) {
  const std::vector<Case> cases = read_cases();
  ASSERT_GE(cases.size(), 30u);
  std::map<std::string, int> families;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.template_name);
    const auto family = detect_chat_family(read_file(kDir + c.template_name + ".jinja"));
    ASSERT_TRUE(family.has_value());
    EXPECT_EQ(chat_family_name(*family), c.family);
    ++families[c.family];
  }
  EXPECT_EQ(families.size(), 7u) << "every family has a real template";
}

TEST(ChatTemplate, FormatsAsTheRealJinjaTemplatesDo) {
  int compared = 0;
  for (const Case& c : read_cases()) {
    if (c.expected == "-") continue;  // detection only (a variant with other spacing)
    SCOPED_TRACE(c.template_name + " / " + c.conversation);
    const Conversation& conv = conversations().at(c.conversation);
    const std::string expected = read_file(kDir + "cases/" + c.expected);
    EXPECT_EQ(template_for(c).format(conv.messages, conv.add_generation_prompt), expected);
    ++compared;
  }
  EXPECT_GE(compared, 30);
}

TEST(ChatTemplate, ReadsTheDefaultSystemMessageOfChatmlTemplates) {
  EXPECT_EQ(chatml_default_system(read_file(kDir + "smollm2-135m-instruct.jinja")),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(chatml_default_system(read_file(kDir + "qwen2.5-0.5b-instruct.jinja")),
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  // A plain ChatML template has none; a system turn built from an expression is not a default.
  EXPECT_EQ(chatml_default_system("{{'<|im_start|>' + message['role'] + '\\n' + message['content']}}"), "");
  EXPECT_EQ(chatml_default_system("{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>' }}"), "");
}

TEST(ChatTemplate, MissingOrUnknownTemplatesAreClearErrors) {
  try {
    ChatTemplate::from_jinja("", "", "<s>", "</s>", "m.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("m.gguf: the model has no chat template"), std::string::npos) << what;
    EXPECT_NE(what.find("--chat-template"), std::string::npos) << what;
  }
  try {
    ChatTemplate::from_jinja("{% for m in messages %}### {{ m.role }}: {{ m.content }}{% endfor %}", "", "", "",
                             "m.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("m.gguf: chat template not recognised"), std::string::npos) << what;
    for (const char* marker : {"<|im_start|>", "<<SYS>>", "<|start_header_id|>", "<|end|>", "<start_of_turn>"}) {
      EXPECT_NE(what.find(marker), std::string::npos) << marker << " in " << what;
    }
    EXPECT_NE(what.find("chatml, llama2, llama3, mistral, zephyr, phi3, gemma"), std::string::npos) << what;
  }
  EXPECT_THROW(ChatTemplate::from_jinja("<|im_start|>", "vicuna", "", "", "m.gguf"), Error);
}

TEST(ChatTemplate, AForcedFamilyOverridesDetection) {
  const ChatTemplate t = ChatTemplate::from_jinja("", "zephyr", "<s>", "</s>", "m.gguf");
  EXPECT_EQ(t.family(), ChatFamily::zephyr);
  const ChatTemplate u = ChatTemplate::from_jinja(read_file(kDir + "smollm2-135m-instruct.jinja"), "llama3",
                                                  "<|begin_of_text|>", "<|eot_id|>", "m.gguf");
  EXPECT_EQ(u.family(), ChatFamily::llama3);
  for (const char* name : {"chatml", "llama2", "llama3", "mistral", "zephyr", "phi3", "gemma"}) {
    ASSERT_TRUE(chat_family_from_name(name).has_value()) << name;
    EXPECT_EQ(chat_family_name(*chat_family_from_name(name)), name);
  }
}

TEST(ChatTemplate, RejectsConversationsTheTemplatesCannotWrite) {
  const ChatTemplate t(ChatFamily::chatml, "", "");
  const std::vector<ChatMessage> two_users = {{"user", "a"}, {"user", "b"}};
  const std::vector<ChatMessage> late_system = {{"user", "a"}, {"system", "b"}};
  const std::vector<ChatMessage> odd_role = {{"tool", "a"}};
  EXPECT_THROW(t.format(two_users, true), Error);
  EXPECT_THROW(t.format(late_system, true), Error);
  EXPECT_THROW(t.format(odd_role, true), Error);
}

// Turn by turn: the steps' texts, joined (dropping an answer where a step rewinds), are the
// whole conversation as the template formats it, and nothing evaluated is ever changed.
void check_incremental(const ChatTemplate& tmpl, const std::string& system, const std::vector<std::string>& users,
                       const std::vector<std::string>& answers, int expected_rewinds) {
  ChatHistory history(tmpl, system);
  std::string cache;        // what a KV cache would hold
  size_t answer_start = 0;  // where the last answer began in it
  int rewinds = 0;
  for (size_t i = 0; i < users.size(); ++i) {
    const ChatHistory::Step step = history.add_user(users[i]);
    if (step.rewind_answer) {
      cache.resize(answer_start);
      ++rewinds;
    }
    cache += step.text;
    EXPECT_EQ(cache, tmpl.format(history.messages(), true)) << "turn " << i;
    answer_start = cache.size();
    if (i < answers.size()) {
      history.add_answer(answers[i]);
      cache += answers[i];
      EXPECT_EQ(history.cached_text(), cache);
    }
  }
  EXPECT_EQ(rewinds, expected_rewinds);
}

TEST(ChatHistory, EvaluatesOnlyTheNewTextOfEachTurn) {
  const ChatTemplate chatml(ChatFamily::chatml, "", "", "Default.");
  ChatHistory h(chatml);
  const ChatHistory::Step s1 = h.add_user("Hi");
  EXPECT_FALSE(s1.rewind_answer);
  EXPECT_EQ(s1.text, "<|im_start|>system\nDefault.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  h.add_answer("Hello!");
  const ChatHistory::Step s2 = h.add_user("Bye");
  EXPECT_FALSE(s2.rewind_answer);
  // The end of the answer's turn (its end-of-turn token first), then the new turn.
  EXPECT_EQ(s2.text, "<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(h.messages().back().content, "Bye");
  EXPECT_EQ(h.messages()[h.messages().size() - 2].content, "Hello!");
}

TEST(ChatHistory, EveryFamilyKeepsTheCacheConsistent) {
  const std::vector<std::string> users = {"Hello there", "What is 2+2?", "Thanks"};
  // Answers as models generate them: SentencePiece models start with a space (Llama 2, Mistral).
  const std::vector<std::string> plain = {"Hi!", "4."};
  const std::vector<std::string> spaced = {" Hi!", " 4."};
  struct FamilyCase {
    ChatFamily family;
    std::string bos, eos;
    int plain_rewinds, spaced_rewinds;  // answers the template writes otherwise than generated
  };
  for (const FamilyCase& f : std::vector<FamilyCase>{
           {ChatFamily::chatml, "", "<|im_end|>", 0, 0},
           {ChatFamily::llama2, "<s>", "</s>", 2, 0},  // " " + answer.strip(): the space is the template's
           {ChatFamily::llama3, "<|begin_of_text|>", "<|eot_id|>", 0, 2},  // trims the answer
           {ChatFamily::mistral, "<s>", "</s>", 2, 0},                     // " " + answer
           {ChatFamily::zephyr, "<s>", "</s>", 0, 0},
           {ChatFamily::phi3, "<s>", "<|endoftext|>", 0, 0},
           {ChatFamily::gemma, "<bos>", "<eos>", 0, 2}}) {  // trims the answer
    SCOPED_TRACE(std::string(chat_family_name(f.family)));
    const ChatTemplate t(f.family, f.bos, f.eos);
    check_incremental(t, "Be brief.", users, plain, f.plain_rewinds);
    check_incremental(t, "", users, plain, f.plain_rewinds);
    check_incremental(t, "", users, spaced, f.spaced_rewinds);
  }
}

TEST(ChatHistory, RewindsAnAnswerTheTemplateWritesDifferently) {
  // Llama 3 trims the answer: a generated trailing newline cannot stay in the cache.
  const ChatTemplate llama3(ChatFamily::llama3, "<|begin_of_text|>", "<|eot_id|>");
  check_incremental(llama3, "", {"a", "b", "c"}, {"x\n", "y"}, 1);
  ChatHistory h(llama3);
  h.add_user("a");
  h.add_answer("x\n");
  const ChatHistory::Step s = h.add_user("b");
  EXPECT_TRUE(s.rewind_answer);
  EXPECT_EQ(s.text,
            "x<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nb<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatHistory, AFailedTurnLeavesTheHistoryAsItWas) {
  ChatHistory h(ChatTemplate(ChatFamily::chatml, "", ""));
  h.add_user("a");
  const std::vector<ChatMessage> before = h.messages();
  EXPECT_THROW(h.add_user("b"), Error);  // two user messages in a row
  EXPECT_EQ(h.messages().size(), before.size());
}

// BOS handling with a real SentencePiece vocabulary (add_bos_token = true, BOS "<s>").
TEST(ChatTokens, BosIsAddedOnceAtTheStartOnly) {
  const std::string path = std::string(STRATA_SHARED_FIXTURES) + "/vocab/ggml-vocab-llama-spm.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  const gguf::File file = gguf::File::open(path);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const TokenId bos = tok.vocab().bos;
  ASSERT_TRUE(tok.vocab().add_bos);
  ASSERT_EQ(tok.token_to_piece(bos), "<s>");

  const std::vector<TokenId> written = tokenize_chat_text(tok, "<s>[INST] Hi [/INST]", true);
  ASSERT_FALSE(written.empty());
  EXPECT_EQ(written[0], bos);
  EXPECT_EQ(std::count(written.begin(), written.end(), bos), 1);

  const std::vector<TokenId> added = tokenize_chat_text(tok, "<|user|>\nHi</s>\n", true);
  EXPECT_EQ(added[0], bos);
  EXPECT_EQ(std::count(added.begin(), added.end(), bos), 1);
  EXPECT_EQ(std::vector<TokenId>(added.begin() + 1, added.end()), tok.encode("<|user|>\nHi</s>\n", false, true));

  const std::vector<TokenId> later = tokenize_chat_text(tok, "</s>\n<|user|>\nHi", false);
  EXPECT_EQ(std::count(later.begin(), later.end(), bos), 0);
  EXPECT_EQ(later[0], tok.vocab().eos);  // special-token text is parsed
}

// The default model's template, read from the file as the chat command does.
TEST(ChatTemplate, FromTheDefaultModel) {
  const char* home = std::getenv("HOME");
  const char* cache = std::getenv("STRATA_CACHE");
  const std::filesystem::path root = cache ? cache : std::filesystem::path(home ? home : ".") / ".cache/strata";
  const std::string path = (root / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").string();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "the default model is not fetched (scripts/fetch-model)";
  const gguf::File file = gguf::File::open(path);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const ChatTemplate t = ChatTemplate::from_model(file, tok, "");
  EXPECT_EQ(t.family(), ChatFamily::chatml);
  EXPECT_EQ(t.default_system(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  const std::vector<ChatMessage> m = {{"user", "Hi"}};
  const std::vector<TokenId> ids = tokenize_chat_text(tok, t.format(m, true), true);
  EXPECT_EQ(tok.token_to_piece(ids[0]), "<|im_start|>");  // no BOS of its own: add_bos_token is false
}

}  // namespace
}  // namespace strata
