#!/usr/bin/env python3
"""Dump a GGUF file with the reference reader (the `gguf` package from PyPI) as JSON in the
shape `ferrite inspect --json --full` uses, so tests can compare the two.

Usage: gguf_py_dump.py FILE.gguf  (needs `pip install gguf==0.19.0`)
"""
import json
import sys

import gguf

NAMES = {
    "UINT8": "u8", "INT8": "i8", "UINT16": "u16", "INT16": "i16", "UINT32": "u32",
    "INT32": "i32", "FLOAT32": "f32", "BOOL": "bool", "STRING": "string", "ARRAY": "array",
    "UINT64": "u64", "INT64": "i64", "FLOAT64": "f64",
}


def type_name(types):
    # [ARRAY, ARRAY, U8] -> array[array[u8]]
    if types[0] == gguf.GGUFValueType.ARRAY:
        if len(types) == 1:
            return "array[array]"
        return "array[" + type_name(types[1:]) + "]"
    return NAMES[types[0].name]


def main(path):
    r = gguf.GGUFReader(path)
    meta = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        v = f.contents()
        meta.append({"key": key, "type": type_name(f.types), "value": v})
    out = {
        "version": int(r.fields["GGUF.version"].contents()),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": meta,
        "tensors": [
            {
                "name": t.name,
                "type": t.tensor_type.name,
                "shape": [int(d) for d in t.shape],
                "n_bytes": int(t.n_bytes),
                "offset": int(t.data_offset) - int(r.data_offset),
            }
            for t in r.tensors
        ],
    }
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1])
