// The memory plan of a session against what is really allocated, and the refusal of a context
// that does not fit, on a backend that reports a small device.
#include "runtime/memory_plan.h"

#include <gtest/gtest.h>

#include <string>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "core/error.h"
#include "model/kv_cache.h"

namespace strata {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_embd = 64;
  c.n_layer = 3;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.n_ff = 96;
  c.n_vocab = 1000;
  c.n_ctx_train = 4096;
  return c;
}

// cpu_ref with a fixed amount of "device" memory free.
class SmallDevice : public CpuRefBackend {
public:
  explicit SmallDevice(size_t free) : free_(free) {}
  std::optional<size_t> device_free_memory() const override { return free_; }
  std::string device_name() const override { return "a small device"; }

private:
  size_t free_;
};

TEST(MemoryPlan, KvCacheIsWhatTheCacheAllocates) {
  CpuRefBackend backend;
  const ModelConfig c = small_config();
  for (const DType type : {DType::F16, DType::F32}) {
    for (const int64_t n_ctx : {1, 7, 256, 1000}) {
      const KvCache cache(backend, c, n_ctx, type);
      EXPECT_EQ(session_memory(c, n_ctx, type, 1).kv_cache, cache.n_bytes()) << dtype_name(type) << " " << n_ctx;
    }
  }
}

TEST(MemoryPlan, ActivationsGrowWithTheBatch) {
  const ModelConfig c = small_config();
  const SessionMemory one = session_memory(c, 256, DType::F16, 1);
  const SessionMemory many = session_memory(c, 256, DType::F16, 100);
  EXPECT_EQ(one.kv_cache, many.kv_cache);
  // at least the logits of every token, device and host copies
  EXPECT_GE(many.activations - one.activations, size_t(99) * 2 * size_t(c.n_vocab) * sizeof(float));
}

TEST(MemoryPlan, LargestContextFitsAndTheNextStepDoesNot) {
  const ModelConfig c = small_config();
  const size_t available = size_t(300) << 20;
  const int64_t n = largest_context(c, DType::F16, 512, available);
  ASSERT_GT(n, 0);
  EXPECT_EQ(n % 256, 0);
  EXPECT_LE(session_memory(c, n, DType::F16, 512).total(), available);
  EXPECT_GT(session_memory(c, n + 256, DType::F16, 512).total(), available);
  EXPECT_EQ(largest_context(c, DType::F16, 512, 1 << 20), 0);
}

TEST(MemoryPlan, TooLargeContextIsRefusedWithSizesAndTheLargestThatFits) {
  const ModelConfig c = small_config();
  const SmallDevice device(size_t(300) << 20);
  EXPECT_NO_THROW(check_session_memory(c, device, 4096, DType::F16, 512));
  const int64_t largest = largest_context(c, DType::F16, 512, size_t(300) << 20);
  try {
    check_session_memory(c, device, 16777216, DType::F16, 512);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("a context of 16777216 tokens needs"), std::string::npos) << m;
    EXPECT_NE(m.find("6.0 GiB of KV cache (f16, 384 B per token)"), std::string::npos) << m;  // 3 layers * 2 * 32 * 2 B
    EXPECT_NE(m.find("300.0 MiB is free on a small device"), std::string::npos) << m;
    EXPECT_NE(m.find("The largest context that fits is " + std::to_string(largest)), std::string::npos) << m;
  }
}

TEST(MemoryPlan, HostBackendsAskTheHost) {
  CpuRefBackend backend;
  std::string where;
  const std::optional<size_t> free = available_memory(backend, where);
  EXPECT_NE(where.find("MemAvailable"), std::string::npos);
  if (free) {
    EXPECT_GT(*free, size_t(0));
  }
}

}  // namespace
}  // namespace strata
