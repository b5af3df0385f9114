// The memory a session will allocate, worked out before allocating it, and the check against
// what the device has: a context too large for the machine is refused with the sizes, what is
// available and the largest context that fits, instead of running into the OOM killer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "core/dtype.h"
#include "model/config.h"

namespace strata {

struct SessionMemory {
  size_t kv_cache = 0;     // K and V of every layer for n_ctx positions
  size_t activations = 0;  // the forward pass's f32 buffers for n_batch tokens and for one, and the host logits
  size_t scratch = 0;      // an allowance for backend workspaces (attention, GEMM, quantized x)
  size_t total() const { return kv_cache + activations + scratch; }
};

// What a session of n_ctx positions (KV cache `kv_type`) evaluating at most n_batch tokens at
// once allocates on top of the weights.
SessionMemory session_memory(const ModelConfig& config, int64_t n_ctx, DType kv_type, int64_t n_batch);

// Free memory where `backend` computes: the device's free memory (backend says), else the
// host's MemAvailable from /proc/meminfo; nullopt when unknown. `where` names it for messages.
std::optional<size_t> available_memory(const Backend& backend, std::string& where);

// The largest context (a multiple of 256, or 0) whose session_memory fits in `available`.
int64_t largest_context(const ModelConfig& config, DType kv_type, int64_t n_batch, size_t available);

// Throws strata::Error when session_memory(...) exceeds available_memory(backend): the message
// gives the sizes, what is available and the largest context that fits.
void check_session_memory(const ModelConfig& config, const Backend& backend, int64_t n_ctx, DType kv_type,
                          int64_t n_batch);

}  // namespace strata
