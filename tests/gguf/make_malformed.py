#!/usr/bin/env python3
"""Writes the hand-made malformed GGUF files of tests/data/gguf/malformed/ and the manifest
expected.txt (file name, a tab, a substring the reader's error must contain), plus a few small
valid files as the fuzzer's seed corpus (fuzz/corpus/gguf/).

The files are built byte by byte here with struct.pack, independently of Strata's writer,
from the GGUF layout: magic "GGUF", u32 version, u64 tensor count, u64 kv count, the
key-value pairs (string key, u32 type, value), the tensor infos (string name, u32 n_dims,
u64 dims, u32 type, u64 offset), padding to the alignment, the data. Little-endian.

Run from anywhere: python3 tests/gguf/make_malformed.py
"""
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MALFORMED = os.path.join(ROOT, "tests", "data", "gguf", "malformed")
CORPUS = os.path.join(ROOT, "fuzz", "corpus", "gguf")

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
T_F32, T_F16, T_Q4_0, T_Q8_0 = 0, 1, 2, 8
U64_MAX = 2**64 - 1

PACK = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
        U64: "<Q", I64: "<q", F64: "<d"}


def gstr(s, length=None):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b) if length is None else length) + b


def value(vtype, v):
    """Encodes a value (without its type tag). Arrays: v = (elem_type, items[, count])."""
    if vtype == STR:
        return gstr(v)
    if vtype == ARR:
        elem, items = v[0], v[1]
        count = v[2] if len(v) > 2 else len(items)
        return struct.pack("<IQ", elem, count) + b"".join(value(elem, x) for x in items)
    return struct.pack(PACK[vtype], v)


def kv(key, vtype, v):
    return gstr(key) + struct.pack("<I", vtype) + value(vtype, v)


def tensor_info(name, dims, ttype, offset, n_dims=None):
    n = len(dims) if n_dims is None else n_dims
    return gstr(name) + struct.pack("<I", n) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<I", ttype) + struct.pack("<Q", offset)


def base_kvs():
    return [
        kv("general.architecture", STR, "test"),
        kv("general.name", STR, "malformed-seed \u00e9\u6f22"),
        kv("test.u32", U32, 7),
        kv("test.tokens", ARR, (STR, ["a", "bb", "\u3042"])),
    ]


def base_tensors():
    # "a": f32 [4, 2] = 32 bytes at 0; "b": q8_0 [32] = 34 bytes at 32 (then padded to 96).
    return [tensor_info("a", [4, 2], T_F32, 0), tensor_info("b", [32], T_Q8_0, 32)]


def build(kvs=None, tensors=None, version=3, magic=b"GGUF", n_tensors=None, n_kv=None, alignment=32,
          data=None, header_override=None):
    kvs = base_kvs() if kvs is None else kvs
    tensors = base_tensors() if tensors is None else tensors
    head = magic + struct.pack("<I", version) if header_override is None else header_override
    head += struct.pack("<QQ", len(tensors) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    pad = (-len(body)) % alignment if alignment and alignment < 4096 else 0
    if data is None:
        data = bytes(range(66)) + bytes(30)  # tensor a, tensor b, padding to 96
    return body + bytes(pad) + data


CASES = []


def case(name, expected, content):
    CASES.append((name, expected, content))


def make_cases():
    max_str = 2**64 - 1
    case("empty.gguf", "unexpected end of file reading magic", b"")
    case("bad_magic.gguf", "bad magic 'GGML'", build(magic=b"GGML"))
    case("version1.gguf", "version 1 is not supported", build(version=1))
    case("version4.gguf", "unsupported GGUF version 4", build(version=4))
    case("version0.gguf", "unsupported GGUF version 0", build(version=0))
    case("big_endian.gguf", "big-endian",
         b"GGUF" + struct.pack(">IQQ", 3, 2, 4) + build()[24:])
    case("tensor_count_huge.gguf", "tensor count 18446744073709551615", build(n_tensors=U64_MAX))
    case("tensor_count_too_big.gguf", "tensor count 1000 at offset 8 cannot fit", build(n_tensors=1000))
    case("kv_count_huge.gguf", "metadata kv count 18446744073709551615", build(n_kv=U64_MAX))
    case("kv_count_too_big.gguf", "metadata kv count 100 at offset 16 cannot fit", build(n_kv=100))
    left = len(build(data=b"")) - 24  # each count alone fits in the bytes left, both together do not
    case("counts_together_too_big.gguf", "cannot fit together", build(n_tensors=left // 33, n_kv=left // 14, data=b""))
    case("kv_count_short.gguf", "n_dims 9", build(n_kv=3))  # the 4th kv is read as a tensor info
    case("array_count_huge.gguf", "array count 18446744073709551615",
         build(kvs=[kv("x", ARR, (U8, [], U64_MAX))]))
    case("array_count_mul_overflow.gguf", "array count 2305843009213693952",
         build(kvs=[kv("x", ARR, (U64, [1, 2], 2**61))]))
    case("array_of_strings_count_huge.gguf", "array count 1152921504606846976",
         build(kvs=[kv("x", ARR, (STR, ["a"], 2**60))]))
    case("string_length_huge.gguf", "string length 18446744073709551615",
         build(kvs=[gstr("x") + struct.pack("<I", STR) + gstr("abc", max_str)]))
    case("string_length_past_end.gguf", "string length 1000",
         build(kvs=[gstr("x") + struct.pack("<I", STR) + gstr("abc", 1000)], tensors=[], data=b""))
    case("key_length_huge.gguf", "key length 18446744073709551615",
         build(kvs=[gstr("x", max_str) + struct.pack("<I", U8) + b"\x01"]))
    case("key_length_wraps.gguf", "key length 18446744073709551608",
         build(kvs=[gstr("x", 2**64 - 8) + struct.pack("<I", U8) + b"\x01"]))
    case("array_string_length_huge.gguf", "string length 18446744073709551615",
         build(kvs=[gstr("x") + struct.pack("<IIQ", ARR, STR, 1) + gstr("abc", max_str)]))
    case("tensor_name_length_huge.gguf", "tensor name length 18446744073709551615",
         build(tensors=[gstr("a", max_str) + struct.pack("<IQIQ", 1, 4, T_F32, 0)]))
    case("n_dims_0.gguf", "n_dims 0", build(tensors=[tensor_info("a", [], T_F32, 0)]))
    case("n_dims_5.gguf", "n_dims 5", build(tensors=[tensor_info("a", [1, 1, 1, 1, 8], T_F32, 0)]))
    case("n_dims_huge.gguf", "n_dims 4294967295", build(tensors=[tensor_info("a", [8], T_F32, 0, n_dims=2**32 - 1)]))
    case("dim_zero.gguf", "dimension 1 is 0", build(tensors=[tensor_info("a", [4, 0], T_F32, 0)]))
    case("dim_too_big.gguf", "dimension 0 = 9223372036854775808",
         build(tensors=[tensor_info("a", [2**63], T_F32, 0)]))
    case("dims_product_overflow.gguf", "element count overflows",
         build(tensors=[tensor_info("a", [2**32, 2**32], T_F32, 0)]))
    case("dims_product_wraps_to_zero.gguf", "element count overflows",
         build(tensors=[tensor_info("a", [2**62, 4, 1, 1], T_F32, 0)]))
    case("dims_product_2_63.gguf", "element count overflows",
         build(tensors=[tensor_info("a", [2**32, 2**31], T_F32, 0)]))
    case("tensor_bytes_overflow.gguf", "tensor size in bytes overflows",
         build(tensors=[tensor_info("a", [2**31, 2**31], T_F32, 0)]))
    case("tensor_type_retired.gguf", "unknown tensor type id 4", build(tensors=[tensor_info("a", [32], 4, 0)]))
    case("tensor_type_huge.gguf", "unknown tensor type id 4294967295",
         build(tensors=[tensor_info("a", [32], 2**32 - 1, 0)]))
    case("ne0_not_block_multiple.gguf", f"ne0 = 33 at offset {24 + len(b''.join(base_kvs())) + 8 + 1 + 4} is not a multiple of the q8_0 block size 32",
         build(tensors=[tensor_info("a", [33], T_Q8_0, 0)]))
    case("value_type_13.gguf", "unknown value type 13", build(kvs=[gstr("x") + struct.pack("<IB", 13, 0)]))
    case("value_type_huge.gguf", "unknown value type 4294967295",
         build(kvs=[gstr("x") + struct.pack("<IB", 2**32 - 1, 0)]))
    case("array_elem_type_13.gguf", "unknown array element type 13",
         build(kvs=[gstr("x") + struct.pack("<IIQ", ARR, 13, 1) + b"\0"]))
    nested = (U8, [1])
    for _ in range(9):
        nested = (ARR, [nested])
    case("arrays_nested_too_deep.gguf", "nested deeper than 8", build(kvs=[kv("x", ARR, nested)]))
    case("bool_value_2.gguf", "bool value 2", build(kvs=[gstr("x") + struct.pack("<IB", BOOL, 2)]))
    case("offset_misaligned.gguf", "data offset 36 at offset",
         build(tensors=[tensor_info("a", [4, 2], T_F32, 0), tensor_info("b", [32], T_Q8_0, 36)]))
    case("offset_past_end.gguf", "data offset 1099511627776 is past end of file",
         build(tensors=[tensor_info("a", [4, 2], T_F32, 0), tensor_info("b", [32], T_Q8_0, 2**40)]))
    case("offset_wraps.gguf", "is past end of file",
         build(tensors=[tensor_info("a", [4, 2], T_F32, 0), tensor_info("b", [32], T_Q8_0, 2**64 - 32)]))
    case("data_past_end.gguf", "tensor 'b': data extends past end of file",
         build(tensors=[tensor_info("a", [4, 2], T_F32, 0), tensor_info("b", [32], T_Q8_0, 64)]))
    case("data_truncated.gguf", "data extends past end of file", build(data=bytes(40)))
    case("tensors_overlap.gguf", "tensor 'b': data [0, 34) overlaps tensor 'a' [0, 32)",
         build(tensors=[tensor_info("a", [4, 2], T_F32, 0), tensor_info("b", [32], T_Q8_0, 0)]))
    case("tensors_overlap_partly.gguf", "overlaps tensor 'a'",
         build(tensors=[tensor_info("a", [16, 2], T_F32, 0), tensor_info("b", [32], T_Q8_0, 96)],
               data=bytes(160)))
    case("duplicate_key.gguf", "metadata key 'test.u32': duplicate key",
         build(kvs=base_kvs() + [kv("test.u32", U32, 8)]))
    case("duplicate_tensor_name.gguf", "tensor 'a': duplicate tensor name",
         build(tensors=[tensor_info("a", [4, 2], T_F32, 0), tensor_info("a", [32], T_Q8_0, 32)]))
    case("empty_key.gguf", "empty key", build(kvs=[kv("", U32, 1)]))
    case("key_not_utf8.gguf", "not valid UTF-8", build(kvs=[kv(b"bad\xff\xfekey", U32, 1)]))
    case("key_overlong_utf8.gguf", "not valid UTF-8", build(kvs=[kv(b"\xc0\xafkey", U32, 1)]))
    case("empty_tensor_name.gguf", "empty tensor name",
         build(tensors=[tensor_info("", [4, 2], T_F32, 0)]))
    case("tensor_name_not_utf8.gguf", "tensor name at offset",
         build(tensors=[tensor_info(b"\xed\xa0\x80", [4, 2], T_F32, 0)]))  # a UTF-16 surrogate
    at = 24 + len(b"".join(base_kvs())) + 8 + len("general.alignment")  # where the value's type id is
    case("alignment_0.gguf", f"alignment 0 at offset {at} is not a power of two",
         build(kvs=base_kvs() + [kv("general.alignment", U32, 0)], alignment=32))
    case("alignment_3.gguf", f"alignment 3 at offset {at} is not a power of two",
         build(kvs=base_kvs() + [kv("general.alignment", U32, 3)], alignment=32))
    case("alignment_huge.gguf", "past end of file",
         build(kvs=base_kvs() + [kv("general.alignment", U32, 2**31)], alignment=2**31,
               tensors=[tensor_info("a", [4, 2], T_F32, 0)]))
    case("alignment_u64.gguf", "alignment must be a u32, got u64",
         build(kvs=base_kvs() + [kv("general.alignment", U64, 2**40)], alignment=32))
    case("alignment_string.gguf", "alignment must be a u32, got str",
         build(kvs=base_kvs() + [kv("general.alignment", STR, "32")], alignment=32))
    case("truncated_header.gguf", "unexpected end of file reading metadata kv count", build()[:20])
    case("truncated_in_kv.gguf", "unexpected end of file reading value type at offset 88",
         build(tensors=[], data=b"")[:90])
    case("truncated_in_tensor_info.gguf", "unexpected end of file", build(data=b"")[:-40])


def valid_seeds():
    nested = kv("test.nested", ARR, (ARR, [(I32, [1, -2]), (I32, []), (I32, [3])]))
    scalars = [kv(f"test.t{t}", t, v) for t, v in
               [(U8, 255), (I8, -128), (U16, 65535), (I16, -32768), (U32, 2**32 - 1), (I32, -2**31), (F32, 1.5),
                (BOOL, 1), (U64, 2**64 - 1), (I64, -2**63), (F64, -0.25)]]
    return {
        "base.gguf": build(),
        "no_tensors.gguf": build(tensors=[], data=b""),
        "all_types.gguf": build(kvs=base_kvs() + scalars + [nested]),
        "aligned_64.gguf": build(kvs=base_kvs() + [kv("general.alignment", U32, 64)], alignment=64,
                                 tensors=[tensor_info("a", [4, 2], T_F32, 0), tensor_info("b", [32], T_Q4_0, 64)],
                                 data=bytes(128)),
        "four_dims.gguf": build(tensors=[tensor_info("w", [32, 2, 1, 3], T_F16, 0)], data=bytes(384)),
    }


def write(directory, name, content):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(content)


def main():
    make_cases()
    os.makedirs(MALFORMED, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)
    for name in os.listdir(MALFORMED):
        if name.endswith(".gguf"):
            os.remove(os.path.join(MALFORMED, name))
    lines = ["# Written by tests/gguf/make_malformed.py: file<TAB>substring the error message must contain"]
    for name, expected, content in CASES:
        write(MALFORMED, name, content)
        lines.append(f"{name}\t{expected}")
    with open(os.path.join(MALFORMED, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    for name, content in valid_seeds().items():
        write(CORPUS, name, content)
    print(f"{len(CASES)} malformed files in {MALFORMED}, {len(valid_seeds())} seeds in {CORPUS}")


if __name__ == "__main__":
    sys.exit(main())
