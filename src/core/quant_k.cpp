// TEMPORARY placeholder: being written.
#include "core/quant.h"
#include "core/error.h"

namespace strata {

void dequantize_row_q2_k(const void*, float*, int64_t) { fail("q2_k: not implemented yet"); }
void quantize_row_q2_k(const float*, void*, int64_t) { fail("q2_k: not implemented yet"); }
void dequantize_row_q3_k(const void*, float*, int64_t) { fail("q3_k: not implemented yet"); }
void quantize_row_q3_k(const float*, void*, int64_t) { fail("q3_k: not implemented yet"); }
void dequantize_row_q4_k(const void*, float*, int64_t) { fail("q4_k: not implemented yet"); }
void quantize_row_q4_k(const float*, void*, int64_t) { fail("q4_k: not implemented yet"); }
void dequantize_row_q5_k(const void*, float*, int64_t) { fail("q5_k: not implemented yet"); }
void quantize_row_q5_k(const float*, void*, int64_t) { fail("q5_k: not implemented yet"); }
void dequantize_row_q6_k(const void*, float*, int64_t) { fail("q6_k: not implemented yet"); }
void quantize_row_q6_k(const float*, void*, int64_t) { fail("q6_k: not implemented yet"); }
void dequantize_row_q8_k(const void*, float*, int64_t) { fail("q8_k: not implemented yet"); }
void quantize_row_q8_k(const float*, void*, int64_t) { fail("q8_k: not implemented yet"); }

}  // namespace strata
