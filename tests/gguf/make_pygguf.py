#!/usr/bin/env python3
"""Writes tests/data/gguf/pygguf/tiny.gguf with the `gguf` Python package's GGUFWriter (pip
install gguf), so that Strata's reader is tested on a file it did not write. The values here
are the expectations of tests/gguf/pygguf_test.cpp; change both together.

Run: python3 tests/gguf/make_pygguf.py [OUT.gguf]
"""
import os
import sys

import gguf
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(ROOT, "tests", "data", "gguf", "pygguf", "tiny.gguf")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    w = gguf.GGUFWriter(out, "llama")  # writes general.architecture = "llama" first
    w.add_name("tiny test")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_bool("test.bool", True)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 3.141592653589793)
    w.add_string("test.str", "h\u00e9llo \U0001F600")
    w.add_array("test.tokens", ["<s>", "</s>", "\u2581hello"])
    w.add_array("test.scores", [0.0, -1.5, 2.25])
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_tensor("token_embd.weight", (np.arange(12, dtype=np.float32) * 0.5).reshape(3, 4))  # ne [4, 3]
    w.add_tensor("blk.0.attn_q.weight", (np.arange(16, dtype=np.float16) - 8).reshape(2, 8))  # ne [8, 2]
    q8 = (np.arange(68) % 256).astype(np.uint8).reshape(2, 34)  # two rows of one Q8_0 block each
    w.add_tensor("blk.0.ffn_down.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # ne [32, 2]
    w.add_tensor("output_norm.weight", np.ones(5, dtype=np.float32))  # ne [5]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out} ({os.path.getsize(out)} bytes) with gguf {getattr(gguf, '__version__', '?')}")


if __name__ == "__main__":
    main()
