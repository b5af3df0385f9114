// TEMPORARY placeholder: being written.
#include "core/quant.h"
#include "core/error.h"

namespace strata {

void dequantize_row_q4_0(const void*, float*, int64_t) { fail("q4_0: not implemented yet"); }
void quantize_row_q4_0(const float*, void*, int64_t) { fail("q4_0: not implemented yet"); }
void dequantize_row_q4_1(const void*, float*, int64_t) { fail("q4_1: not implemented yet"); }
void quantize_row_q4_1(const float*, void*, int64_t) { fail("q4_1: not implemented yet"); }
void dequantize_row_q5_0(const void*, float*, int64_t) { fail("q5_0: not implemented yet"); }
void quantize_row_q5_0(const float*, void*, int64_t) { fail("q5_0: not implemented yet"); }
void dequantize_row_q5_1(const void*, float*, int64_t) { fail("q5_1: not implemented yet"); }
void quantize_row_q5_1(const float*, void*, int64_t) { fail("q5_1: not implemented yet"); }
void dequantize_row_q8_0(const void*, float*, int64_t) { fail("q8_0: not implemented yet"); }
void quantize_row_q8_0(const float*, void*, int64_t) { fail("q8_0: not implemented yet"); }
void dequantize_row_iq4_nl(const void*, float*, int64_t) { fail("iq4_nl: not implemented yet"); }
void quantize_row_iq4_nl(const float*, void*, int64_t) { fail("iq4_nl: not implemented yet"); }
void dequantize_row_iq4_xs(const void*, float*, int64_t) { fail("iq4_xs: not implemented yet"); }
void quantize_row_iq4_xs(const float*, void*, int64_t) { fail("iq4_xs: not implemented yet"); }

}  // namespace strata
