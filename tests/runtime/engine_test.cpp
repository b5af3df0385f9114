// The engine (runtime/engine.h) on a tiny llama model, on cpu_ref and the fast cpu backend:
// batching changes no token, cancel frees a slot, a full queue and a prompt too long are
// refused, stop strings, token limits, the end of the context, and logprobs against a direct
// Session evaluation.
#include "runtime/engine.h"

#include <gtest/gtest.h>

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
    path_ = ::testing::TempDir() + "strata-engine-tiny-" + test_name_of(GetParam()) + ".gguf";
    write_tiny_llama(path_, shape_, 11);
    model_ = Model::load(path_, *backend_);
  }
  void TearDown() override {
    if (!path_.empty()) std::remove(path_.c_str());
  }

  EngineOptions options(int64_t n_parallel) const {
    return {.n_ctx = 48, .n_parallel = n_parallel, .block_tokens = 4, .n_batch = 5, .max_queued = 64};
  }
  // Each request alone in an engine of one slot, then all at once in an engine of four.
  void expect_batched_equals_alone(const std::vector<EngineRequest>& requests) {
    std::vector<Result> alone(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      Engine engine(*model_, *backend_, tokenizer_, options(1));
      engine.submit(requests[i], collect(alone[i]));
      run_until_done(engine, {&alone[i]});
    }
    std::vector<Result> batched(requests.size());
    Engine engine(*model_, *backend_, tokenizer_, options(4));
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
