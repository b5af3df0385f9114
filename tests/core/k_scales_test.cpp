// scale_min_6bit (core/k_scales.h), the one decoder of the Q4_K / Q5_K 6-bit scales and mins
// that the reference, the CPU kernels and the CUDA kernels share: a hand-worked block, and
// every value of every sub-block packed as the GGUF layout describes it.
#include "core/k_scales.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "core/quant_blocks.h"

namespace strata {
namespace {

using Scales = std::array<uint8_t, K_SCALE_SIZE>;

TEST(KScales, HandWorkedBlock) {
  const Scales s = {0x41, 0x82, 0xC3, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9A, 0xBC, 0xDE, 0xF0};
  // Sub-blocks 0-3: the low 6 bits of bytes j (scale) and j + 4 (min). Sub-blocks 4-7: the
  // nibbles of byte j + 4 (scale low, min high) under the top 2 bits of bytes j - 4 and j.
  const int want_scale[8] = {1, 2, 3, 4, 0xA | 1 << 4, 0xC | 2 << 4, 0xE | 3 << 4, 0x0 | 0 << 4};
  const int want_min[8] = {5, 6, 7, 8, 0x9 | 1 << 4, 0xB | 2 << 4, 0xD | 3 << 4, 0xF | 0 << 4};
  for (int j = 0; j < 8; ++j) {
    int scale = -1, min = -1;
    scale_min_6bit(s.data(), j, scale, min);
    EXPECT_EQ(scale, want_scale[j]) << "sub-block " << j;
    EXPECT_EQ(min, want_min[j]) << "sub-block " << j;
  }
}

// The 12 bytes holding only sub-block j's scale and min, placed bit by bit as described
// above.
Scales pack_one(int j, int scale, int min) {
  Scales s{};
  if (j < 4) {
    s[j] = uint8_t(scale);
    s[j + 4] = uint8_t(min);
  } else {
    s[j + 4] = uint8_t((scale & 0x0F) | (min & 0x0F) << 4);
    s[j - 4] = uint8_t((scale >> 4) << 6);
    s[j] = uint8_t((min >> 4) << 6);
  }
  return s;
}

TEST(KScales, EveryValueOfEverySubBlock) {
  for (int j = 0; j < 8; ++j) {
    for (int scale = 0; scale < 64; ++scale) {
      for (int min = 0; min < 64; ++min) {
        const Scales s = pack_one(j, scale, min);
        for (int i = 0; i < 8; ++i) {
          int got_scale = -1, got_min = -1;
          scale_min_6bit(s.data(), i, got_scale, got_min);
          ASSERT_EQ(got_scale, i == j ? scale : 0) << "j " << j << " i " << i << " scale " << scale;
          ASSERT_EQ(got_min, i == j ? min : 0) << "j " << j << " i " << i << " min " << min;
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata
