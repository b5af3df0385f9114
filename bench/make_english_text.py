#!/usr/bin/env python3
"""Writes the benchmark text: 1,000,000 bytes of English made from what every machine here
has (Python's documentation topics, pydoc_data, then the license texts in
/usr/share/common-licenses), repeated as needed. Deterministic for a given Python/Debian.

    python3 bench/make_english_text.py OUT.txt [--bytes N]
"""
import argparse
import os

import pydoc_data.topics


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    parts = [pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics)]
    lic = "/usr/share/common-licenses"
    if os.path.isdir(lic):
        for name in sorted(os.listdir(lic)):
            path = os.path.join(lic, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f.read())
    text = "\n\n".join(parts)
    while len(text.encode("utf-8")) < args.bytes:
        text += "\n\n" + text
    data = text.encode("utf-8")[: args.bytes]
    data = data.decode("utf-8", errors="ignore").encode("utf-8")  # never end inside a character
    with open(args.out, "wb") as f:
        f.write(data)
    print(f"{args.out}: {len(data)} bytes")


if __name__ == "__main__":
    main()
