#!/usr/bin/env python3
"""Instruction mix of kernels in a `cuobjdump -sass` listing: for each kernel
whose mangled name contains one of the given substrings, its SASS instruction
count and the most frequent opcodes (without modifiers), one line each.

usage: sass_mix.py SASS_FILE SUBSTRING...
"""
import collections
import re
import sys


def kernels(text):
    name, body = None, []
    for line in text.splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            if name:
                yield name, body
            name, body = m.group(1), []
        elif name:
            m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
            if m:
                body.append(m.group(2).split(".")[0])
    if name:
        yield name, body


def main():
    text = open(sys.argv[1]).read()
    for name, ops in kernels(text):
        if not any(s in name for s in sys.argv[2:]):
            continue
        mix = collections.Counter(ops)
        top = " ".join(f"{op}:{n}" for op, n in mix.most_common(14))
        print(f"{name[:90]} total {len(ops)} | {top}")


if __name__ == "__main__":
    main()
