#!/usr/bin/env python3
"""Reads a GGUF file with the `gguf` Python package's GGUFReader and prints it as JSON:
{"alignment", "data_offset", "metadata": {key: {"types": [...], "value": ...}},
 "tensors": [{"name", "type", "shape", "offset", "nbytes", "data_hex"}]}.
tests/gguf/pygguf_test.cpp runs it on a file Strata's writer made, as an independent reader.
Nested arrays are reported by their types only (GGUFReader does not decode them)."""
import json
import sys

import gguf


def main():
    r = gguf.GGUFReader(sys.argv[1])
    meta = {}
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [t.name for t in field.types]
        entry = {"types": types}
        if types.count("ARRAY") <= 1:
            v = field.contents()
            entry["value"] = v.tolist() if hasattr(v, "tolist") else v
        meta[key] = entry
    tensors = [{
        "name": t.name,
        "type": t.tensor_type.name,
        "shape": [int(x) for x in t.shape],
        "offset": int(t.data_offset),
        "nbytes": int(t.n_bytes),
        "data_hex": bytes(t.data.tobytes()).hex(),
    } for t in r.tensors]
    json.dump({"alignment": int(r.alignment), "data_offset": int(r.data_offset), "metadata": meta,
               "tensors": tensors}, sys.stdout)


if __name__ == "__main__":
    main()
