// The engine (runtime/engine.h) on a tiny llama model, on cpu_ref and the fast cpu backend:
// batching changes no token, cancel frees a slot, a full queue and a prompt too long are
// refused, stop strings, token limits, the end of the context, and logprobs against a direct
// Session evaluation.
#include "runtime/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <map>
#include <thread>

#include "backend/backends_under_test.h"
#include "runtime/logprobs.h"
#include "runtime/session.h"
#include "runtime/tiny_model.h"

namespace strata::test {
namespace {

struct Result {
  std::vector<TokenId> tokens;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::vector<std::vector<TokenLogprob>> tops;
  StopReason stop = StopReason::token_limit;
  int64_t n_generated = 0;
  int64_t n_cached = 0;
  int n_finals = 0;
};

// Appends every output to `r`.
OutputCallback collect(Result& r) {
  return [&r](const EngineOutput& out) {
    r.text += out.text;
    if (out.finished) {
      ++r.n_finals;
      r.stop = out.stop;
      r.n_generated = out.n_generated;
      r.n_cached = out.n_cached;
      return;
    }
    r.tokens.push_back(out.token);
    r.logprobs.push_back(out.logprob);
    r.tops.push_back(out.top);
  };
}

// Steps until every result has its final output (at most `max_steps` steps).
void run_until_done(Engine& engine, const std::vector<const Result*>& results, int max_steps = 10000) {
  auto done = [&] {
    for (const Result* r : results)
      if (r->n_finals == 0) return false;
    return true;
  };
  for (int i = 0; i < max_steps && !done(); ++i) engine.step();
  ASSERT_TRUE(done()) << "requests still running after " << max_steps << " steps";
}

void run_all_until_done(Engine& engine, const std::vector<Result>& results) {
  std::vector<const Result*> all;
  for (const Result& r : results) all.push_back(&r);
  run_until_done(engine, all);
}

// Prompt i: 3 + 2i tokens, varied ids.
std::vector<TokenId> prompt_of(int i, int64_t n_vocab) {
  std::vector<TokenId> p;
  for (int j = 0; j < 3 + 2 * i; ++j) p.push_back(TokenId(3 + (i * 7 + j * 13) % (n_vocab - 3)));
  return p;
}

class EngineOnBackend : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    backend_ = backend_under_test(GetParam());
    if (backend_ == nullptr) GTEST_SKIP() << GetParam() << " cannot run here";
    path_ = ::testing::TempDir() + "strata-engine-tiny-" + std::to_string(getpid()) + "-" + test_name_of(GetParam()) +
            ".gguf";
    write_tiny_llama(path_, shape_, 11);
    model_ = Model::load(path_, *backend_);
  }
  void TearDown() override {
    if (!path_.empty()) std::remove(path_.c_str());
  }

  EngineOptions options(int64_t n_parallel) const {
    return {.n_ctx = 48, .n_parallel = n_parallel, .block_tokens = 4, .n_batch = 5, .max_queued = 64};
  }
  // Each request alone in an engine of one sequence, then all at once in an engine of four (or
  // of `wide`: eight sequences in batches of up to 64 tokens).
  void expect_batched_equals_alone(const std::vector<EngineRequest>& requests, bool wide = false) {
    std::vector<Result> alone(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      Engine engine(*model_, *backend_, tokenizer_, options(1));
      engine.submit(requests[i], collect(alone[i]));
      run_until_done(engine, {&alone[i]});
    }
    std::vector<Result> batched(requests.size());
    EngineOptions o = options(4);
    if (wide) o.n_parallel = 8, o.n_batch = 64;
    Engine engine(*model_, *backend_, tokenizer_, o);
    for (size_t i = 0; i < requests.size(); ++i) engine.submit(requests[i], collect(batched[i]));
    run_all_until_done(engine, batched);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_FALSE(alone[i].tokens.empty()) << "request " << i;
      EXPECT_EQ(alone[i].tokens, batched[i].tokens) << "request " << i;
      EXPECT_EQ(alone[i].text, batched[i].text) << "request " << i;
      EXPECT_EQ(alone[i].n_finals, 1);
      EXPECT_EQ(batched[i].n_finals, 1);
    }
    const EngineStats stats = engine.stats();
    EXPECT_EQ(stats.running, 0);
    EXPECT_EQ(stats.queued, 0);
    EXPECT_EQ(stats.kv_blocks_used, 0);
    EXPECT_EQ(stats.requests_finished, int64_t(requests.size()));
  }

  TinyModelShape shape_;
  Backend* backend_ = nullptr;
  std::string path_;
  std::unique_ptr<Model> model_;
  Tokenizer tokenizer_ = tiny_tokenizer(TinyModelShape{}.n_vocab);
};

TEST_P(EngineOnBackend, GreedyRequestsBatchedEqualAlone) {
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 8; ++i) {
    requests.push_back({.prompt = prompt_of(i, shape_.n_vocab),
                        .sampling = {.temperature = 0},
                        .max_tokens = 6 + i,
                        .ignore_eos = i % 2 == 0});
  }
  expect_batched_equals_alone(requests);
}

// Eight decode tokens and whole prompts in one pass: the fast backend's many-column kernels
// for the batch, its few-column ones alone.
TEST_P(EngineOnBackend, GreedyRequestsInWideBatchesEqualAlone) {
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 8; ++i) {
    requests.push_back(
        {.prompt = prompt_of(i, shape_.n_vocab), .sampling = {.temperature = 0}, .max_tokens = 8, .ignore_eos = true});
  }
  expect_batched_equals_alone(requests, true);
}

TEST_P(EngineOnBackend, SeededRequestsBatchedEqualAlone) {
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 8; ++i) {
    requests.push_back(
        {.prompt = prompt_of(7 - i, shape_.n_vocab),
         .sampling = {.temperature = 1.5f, .top_k = 0, .top_p = 1, .min_p = 0, .seed = uint64_t(100 + i)},
         .max_tokens = 10,
         .ignore_eos = true,
         .top_logprobs = 2});
  }
  expect_batched_equals_alone(requests);
}

TEST_P(EngineOnBackend, CancelFreesTheSlot) {
  Engine engine(*model_, *backend_, tokenizer_, options(1));
  Result a, b;
  const RequestId ida = engine.submit(
      {.prompt = prompt_of(2, shape_.n_vocab), .sampling = {.temperature = 0}, .ignore_eos = true}, collect(a));
  engine.submit({.prompt = prompt_of(1, shape_.n_vocab), .sampling = {.temperature = 0}, .max_tokens = 3}, collect(b));
  for (int i = 0; i < 4; ++i) engine.step();
  EXPECT_EQ(engine.stats().running, 1);
  EXPECT_EQ(engine.stats().queued, 1);
  EXPECT_GT(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(a.n_finals, 0);
  engine.cancel(ida);
  run_until_done(engine, {&a, &b});
  EXPECT_EQ(a.stop, StopReason::interrupted);
  EXPECT_EQ(a.n_finals, 1);
  EXPECT_EQ(b.n_finals, 1);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().running, 0);
  engine.cancel(ida);  // finished: ignored
  engine.cancel(12345);
  EXPECT_FALSE(engine.step());
  EXPECT_EQ(a.n_finals, 1);
}

TEST_P(EngineOnBackend, CancelWhileQueued) {
  Engine engine(*model_, *backend_, tokenizer_, options(1));
  Result a, b;
  engine.submit({.prompt = prompt_of(0, shape_.n_vocab), .sampling = {.temperature = 0}, .max_tokens = 2}, collect(a));
  const RequestId idb =
      engine.submit({.prompt = prompt_of(1, shape_.n_vocab), .sampling = {.temperature = 0}}, collect(b));
  engine.cancel(idb);
  run_until_done(engine, {&a, &b});
  EXPECT_EQ(b.stop, StopReason::interrupted);
  EXPECT_TRUE(b.tokens.empty());
  EXPECT_EQ(a.tokens.size(), 2u);
}

TEST_P(EngineOnBackend, FullQueueIsRefused) {
  EngineOptions o = options(2);
  o.max_queued = 1;
  Engine engine(*model_, *backend_, tokenizer_, o);
  Result r[5];
  const EngineRequest req{.prompt = prompt_of(0, shape_.n_vocab), .max_tokens = 20, .ignore_eos = true};
  const RequestId first = engine.submit(req, collect(r[0]));
  for (int i = 1; i < 3; ++i) engine.submit(req, collect(r[i]));  // two free slots and one waiting
  EXPECT_THROW(engine.submit(req, collect(r[3])), EngineFull);
  engine.step();  // two admitted, one waits
  EXPECT_EQ(engine.stats().running, 2);
  EXPECT_THROW(engine.submit(req, collect(r[3])), EngineFull);
  engine.cancel(first);
  engine.step();  // the waiting one takes the freed slot
  EXPECT_EQ(engine.stats().running, 2);
  EXPECT_EQ(engine.stats().queued, 0);
  engine.submit(req, collect(r[3]));
  EXPECT_THROW(engine.submit(req, collect(r[4])), EngineFull);
}

TEST_P(EngineOnBackend, BadRequestsAreRefusedWithTheReason) {
  Engine engine(*model_, *backend_, tokenizer_, options(1));
  Result r;
  try {
    engine.submit({.prompt = std::vector<TokenId>(50, 5)}, collect(r));
    FAIL() << "a prompt longer than the context was accepted";
  } catch (const EngineFull&) {
    FAIL() << "EngineFull for a prompt too long";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("50 tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("48 tokens"), std::string::npos) << e.what();
  }
  EXPECT_THROW(engine.submit({.prompt = std::vector<TokenId>(48, 5)}, collect(r)), Error);  // no room to generate
  EXPECT_THROW(engine.submit({.prompt = {}}, collect(r)), Error);
  EXPECT_THROW(engine.submit({.prompt = {5, 96}}, collect(r)), Error);
  EXPECT_THROW(engine.submit({.prompt = {5, -1}}, collect(r)), Error);
  EXPECT_THROW(engine.submit({.prompt = {5}, .top_logprobs = 21}, collect(r)), Error);
  EXPECT_THROW(engine.submit({.prompt = {5}, .sampling = {.top_p = 2}}, collect(r)), Error);
  EXPECT_EQ(engine.stats().queued, 0);
  EXPECT_FALSE(engine.step());
}

TEST_P(EngineOnBackend, StopStringEndsTheText) {
  const EngineRequest base{
      .prompt = prompt_of(3, shape_.n_vocab), .sampling = {.temperature = 0}, .max_tokens = 16, .ignore_eos = true};
  Engine engine(*model_, *backend_, tokenizer_, options(2));
  Result free_run;
  engine.submit(base, collect(free_run));
  run_until_done(engine, {&free_run});
  ASSERT_GE(free_run.text.size(), 8u);
  // A stop string taken from the middle of the free run's text.
  const std::string stop = free_run.text.substr(5, 2);
  const std::string expected = free_run.text.substr(0, free_run.text.find(stop));
  EngineRequest with_stop = base;
  with_stop.stop_strings = {stop, "not in the text"};
  Result stopped;
  engine.submit(with_stop, collect(stopped));
  run_until_done(engine, {&stopped});
  EXPECT_EQ(stopped.text, expected);
  EXPECT_EQ(stopped.stop, StopReason::stop_string);
  EXPECT_LT(stopped.tokens.size(), free_run.tokens.size());
}

TEST_P(EngineOnBackend, TokenLimitAndEndOfContext) {
  Engine engine(*model_, *backend_, tokenizer_, options(2));
  Result limited, to_the_end, none;
  const std::vector<TokenId> prompt = prompt_of(5, shape_.n_vocab);  // 13 tokens
  engine.submit({.prompt = prompt, .sampling = {.temperature = 0}, .max_tokens = 4, .ignore_eos = true},
                collect(limited));
  engine.submit({.prompt = prompt, .sampling = {.temperature = 0}, .ignore_eos = true}, collect(to_the_end));
  engine.submit({.prompt = prompt, .sampling = {.temperature = 0}, .max_tokens = 0}, collect(none));
  run_until_done(engine, {&limited, &to_the_end, &none});
  EXPECT_EQ(limited.stop, StopReason::token_limit);
  EXPECT_EQ(limited.tokens.size(), 4u);
  EXPECT_EQ(to_the_end.stop, StopReason::context_full);
  // The last token sampled is not evaluated: one more than the context has room for.
  EXPECT_EQ(to_the_end.n_generated, 48 - int64_t(prompt.size()) + 1);
  EXPECT_EQ(std::vector<TokenId>(to_the_end.tokens.begin(), to_the_end.tokens.begin() + 4), limited.tokens);
  EXPECT_EQ(none.stop, StopReason::token_limit);
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(engine.stats().generated_tokens, int64_t(limited.tokens.size() + to_the_end.tokens.size()));
}

TEST_P(EngineOnBackend, LogprobsMatchASessionsLogits) {
  const std::vector<TokenId> prompt = prompt_of(4, shape_.n_vocab);
  const float temperature = 0.7f;
  Engine engine(*model_, *backend_, tokenizer_, options(2));
  Result r;
  engine.submit({.prompt = prompt,
                 .sampling = {.temperature = temperature, .seed = 5},
                 .max_tokens = 3,
                 .ignore_eos = true,
                 .top_logprobs = 5},
                collect(r));
  run_until_done(engine, {&r});
  ASSERT_EQ(r.tokens.size(), 3u);
  Session session(*model_, *backend_, {.n_ctx = 48});
  // The prompt in the engine's chunks (n_batch), so that every product has the engine's
  // shapes: the cpu backend may round a many-column product (its packed prompt kernels) in
  // another order than a few-column one, and with two-term activations that shows in the
  // logits through the f16 cache.
  const auto n_batch = size_t(options(2).n_batch);
  std::span<const float> logits;
  for (size_t p = 0; p < prompt.size(); p += n_batch) {
    logits = session.eval(std::span(prompt).subspan(p, std::min(n_batch, prompt.size() - p)));
  }
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    // The same numbers straight from the logits: log-softmax of logits / temperature, masked eos.
    std::vector<float> masked(logits.begin(), logits.end());
    masked[2] = -INFINITY;
    double z = 0;
    for (const float l : masked) z += std::exp(double(l) / temperature);
    const TokenId id = r.tokens[i];
    EXPECT_EQ(r.logprobs[i].token, id);
    EXPECT_NEAR(r.logprobs[i].logprob, double(masked[size_t(id)]) / temperature - std::log(z), 1e-4);
    ASSERT_EQ(r.tops[i].size(), 5u);
    double p_top = 0;
    for (size_t k = 0; k < 5; ++k) {
      p_top += std::exp(r.tops[i][k].logprob);
      if (k > 0) {
        EXPECT_GE(r.tops[i][k - 1].logprob, r.tops[i][k].logprob);
      }
      EXPECT_LE(r.tops[i][k].logprob, 0.0f);
      if (r.tops[i][k].token == id) {
        EXPECT_EQ(r.tops[i][k].logprob, r.logprobs[i].logprob);
      }
    }
    EXPECT_LE(p_top, 1.0 + 1e-5);
    EXPECT_LE(r.logprobs[i].logprob, r.tops[i][0].logprob);
    const TokenId next[1] = {id};
    logits = session.eval(next);
  }
}

// A prompt that starts with blocks an earlier request computed takes them (reported as cached
// tokens) and gives what computing them again gives; a chat-like follow-up (the prompt, the
// answer, more) reuses the answer's blocks too.
TEST_P(EngineOnBackend, CachedPrefixGivesWhatRecomputingGives) {
  const std::vector<TokenId> prompt = prompt_of(6, shape_.n_vocab);  // 15 tokens: 3 whole blocks before the last
  const EngineRequest first{.prompt = prompt, .sampling = {.temperature = 0}, .max_tokens = 6, .ignore_eos = true};
  auto run = [&](Engine& engine, const EngineRequest& r) {
    Result result;
    engine.submit(r, collect(result));
    run_until_done(engine, {&result});
    return result;
  };
  EngineOptions uncached = options(2);
  uncached.prefix_cache = false;
  Engine engine(*model_, *backend_, tokenizer_, options(2)), plain(*model_, *backend_, tokenizer_, uncached);
  const Result a = run(engine, first);
  EXPECT_EQ(a.n_cached, 0);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().kv_blocks_cached, 5);  // 20 tokens evaluated (15 + 5 generated)
  const Result again = run(engine, first);
  EXPECT_EQ(again.n_cached, 12);
  EXPECT_EQ(again.tokens, a.tokens);
  EXPECT_EQ(again.text, a.text);
  // The prompt, its answer and two more tokens: 5 cached blocks.
  EngineRequest follow_up = first;
  follow_up.prompt.insert(follow_up.prompt.end(), a.tokens.begin(), a.tokens.end());
  follow_up.prompt.insert(follow_up.prompt.end(), {7, 9});
  const Result reused = run(engine, follow_up);
  const Result recomputed = run(plain, follow_up);
  EXPECT_EQ(reused.n_cached, 20);
  EXPECT_EQ(recomputed.n_cached, 0);
  EXPECT_EQ(reused.tokens, recomputed.tokens);
  EXPECT_EQ(reused.text, recomputed.text);
  EXPECT_EQ(engine.stats().cached_tokens, 32);
  EXPECT_EQ(plain.stats().kv_blocks_cached, 0);
  EXPECT_EQ(plain.stats().kv_blocks_used, 0);
}

// A request whose blocks do not fit beside those the running ones may take waits in the queue
// (with a sequence place free) and runs when they are given back.
TEST_P(EngineOnBackend, FullCacheQueuesTheRequest) {
  EngineOptions o = options(2);
  o.kv_tokens = 48;  // 12 blocks: what one sequence may reach
  Engine engine(*model_, *backend_, tokenizer_, o);
  Result big, small, small_alone;
  engine.submit({.prompt = prompt_of(1, shape_.n_vocab), .sampling = {.temperature = 0}, .ignore_eos = true},
                collect(big));  // up to the end of the context: all 12 blocks
  const EngineRequest short_one{
      .prompt = prompt_of(2, shape_.n_vocab), .sampling = {.temperature = 0}, .max_tokens = 3};
  engine.submit(short_one, collect(small));
  engine.step();
  EXPECT_EQ(engine.stats().running, 1);
  EXPECT_EQ(engine.stats().queued, 1);
  run_until_done(engine, {&big, &small});
  EXPECT_EQ(big.stop, StopReason::context_full);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  Engine alone(*model_, *backend_, tokenizer_, options(1));
  alone.submit(short_one, collect(small_alone));
  run_until_done(alone, {&small_alone});
  EXPECT_EQ(small.tokens, small_alone.tokens);
}

// Cached blocks nobody holds make room for new ones when the cache is full: the prefix is then
// computed again, to the same tokens.
TEST_P(EngineOnBackend, CachedBlocksAreEvictedForNewOnes) {
  EngineOptions o = options(1);
  o.kv_tokens = 48;
  Engine engine(*model_, *backend_, tokenizer_, o);
  const EngineRequest x{
      .prompt = prompt_of(6, shape_.n_vocab), .sampling = {.temperature = 0}, .max_tokens = 2, .ignore_eos = true};
  Result x1, y, x2;
  engine.submit(x, collect(x1));
  run_until_done(engine, {&x1});
  EXPECT_EQ(engine.stats().kv_blocks_cached, 4);
  engine.submit({.prompt = prompt_of(3, shape_.n_vocab), .sampling = {.temperature = 0}, .ignore_eos = true},
                collect(y));  // to the end of the context: every block
  run_until_done(engine, {&y});
  EXPECT_EQ(y.n_cached, 0);
  EXPECT_EQ(engine.stats().kv_blocks_cached, 12);
  engine.submit(x, collect(x2));
  run_until_done(engine, {&x2});
  EXPECT_EQ(x2.n_cached, 0);
  EXPECT_EQ(x2.tokens, x1.tokens);
}

TEST_P(EngineOnBackend, BudgetBelowTheContextIsRefused) {
  EngineOptions o = options(2);
  o.kv_tokens = 40;
  try {
    Engine engine(*model_, *backend_, tokenizer_, o);
    FAIL() << "a KV budget below the context was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("40 tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("48 tokens"), std::string::npos) << e.what();
  }
}

TEST_P(EngineOnBackend, RunServesRequestsFromOtherThreads) {
  Engine engine(*model_, *backend_, tokenizer_, options(2));
  std::atomic<bool> stop{false};
  std::thread driver([&] { engine.run(stop); });
  std::vector<Result> results(5);
  std::atomic<int> finished{0};
  for (int i = 0; i < 5; ++i) {
    Result& r = results[size_t(i)];
    engine.submit({.prompt = prompt_of(i, shape_.n_vocab), .sampling = {.temperature = 0}, .max_tokens = 3},
                  [&r, &finished, inner = collect(r)](const EngineOutput& out) {
                    inner(out);
                    if (out.finished) ++finished;
                  });
  }
  for (int i = 0; i < 2000 && finished.load() < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  driver.join();
  EXPECT_EQ(finished.load(), 5);
  EXPECT_EQ(engine.stats().requests_finished, 5);
}

std::vector<std::string> engine_backends() {
  return {"cpu_ref", "cpu/" + std::string(cpu::isa_name(cpu::available_isas().back()))};
}

INSTANTIATE_TEST_SUITE_P(CpuBackends, EngineOnBackend, ::testing::ValuesIn(engine_backends()),
                         [](const auto& info) { return test_name_of(info.param); });

}  // namespace
}  // namespace strata::test
