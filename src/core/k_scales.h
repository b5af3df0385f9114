// The 6-bit sub-block scales and mins of Q4_K and Q5_K blocks (12 bytes for 8 sub-blocks,
// quant_blocks.h: K_SCALE_SIZE): one definition for the reference dequantize (quant_k.cpp),
// the fast CPU kernels and the CUDA kernels (backend/cuda/quant_decode.cuh), so that every
// backend reads the same bits the same way.
#pragma once

#include <cstdint>

// A function for the host and, in code that nvcc compiles, for the device as well.
#ifdef __CUDACC__
#define STRATA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define STRATA_HOST_DEVICE inline
#endif

namespace strata {

// Scale and min (0..63) of sub-block j (0..7) from the block's scale bytes s. Sub-blocks 0-3
// keep scale and min whole in the low 6 bits of bytes j and j + 4; sub-blocks 4-7 keep their
// low 4 bits in the nibbles of byte j + 4 (scale low, min high) and their top 2 bits in the
// top bits of bytes j - 4 (scale) and j (min).
STRATA_HOST_DEVICE void scale_min_6bit(const uint8_t* s, int j, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

}  // namespace strata
