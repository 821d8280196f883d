#!/usr/bin/env python3
"""Summarises ThreadSanitizer reports in test logs: one row per distinct race, keyed by the function at the
top of each of its two stacks (the two accesses), with how many times and in which logs it was seen, and
whether either access is in tpserve's own code (a `tpserve::` function at frame #0) or only inside library
code (gRPC's, Abseil's, spdlog's headers are compiled into our objects, but their synchronization lives in
Debian's uninstrumented libraries, so TSan cannot see it: docs/fuzzing.md).

    python3 fuzz/tsan_report.py bazel-testlogs/gateway/*/test.log bazel-testlogs/router/*/test.log
Exit status 1 when some race has a tpserve access at the top of a stack.
"""
import collections, re, sys

ACCESS = re.compile(r"^  (Previous )?(Atomic )?(read|write) of size", re.I)
FRAME = re.compile(r"^    #\d+ (.*) \(([^)+]*)")


def top(frames):
    """The first frame that is not TSan's own interceptor (memcpy, operator new, ...): "function (module)"."""
    for name, module in frames:
        if "libtsan" not in module:
            return f"{name.split(' <null>')[0]} ({module.rsplit('/', 1)[-1]})"
    return "?"


def races(text):
    """(top of access 1, top of access 2) per report, in order."""
    for report in text.split("WARNING: ThreadSanitizer: ")[1:]:
        if not report.startswith("data race"):
            yield (report.split("\n", 1)[0].strip(), "")
            continue
        stacks, frames = [], None
        for line in report.splitlines():
            if ACCESS.match(line):
                frames = []
                stacks.append(frames)
            elif frames is not None:
                m = FRAME.match(line)
                if m:
                    frames.append((m.group(1), m.group(2)))
                elif not line.strip():
                    frames = None
        yield tuple(([top(f) for f in stacks] + ["?", "?"])[:2])


def main(paths):
    seen = collections.defaultdict(lambda: [0, set()])
    for path in paths:
        for key in races(open(path, errors="replace").read()):
            seen[key][0] += 1
            seen[key][1].add(path.split("testlogs/")[-1].rsplit("/", 1)[0])
    ours = 0
    for (a, b), (n, logs) in sorted(seen.items(), key=lambda kv: -kv[1][0]):
        mine = any(x.startswith("tpserve::") for x in (a, b))
        ours += mine
        print(f"{n:4d}  {'TPSERVE' if mine else 'library'}  {a[:90]}  <->  {b[:90]}  [{', '.join(sorted(logs))}]")
    print(f"{len(seen)} distinct races, {ours} with a tpserve access at the top of a stack")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
