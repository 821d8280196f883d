#!/usr/bin/env python3
"""Sums test results for .ci/run.

usage: test_summary.py TESTLOGS_DIR RESULTS_FILE

Reads every test.xml (GoogleTest's XML, written by `bazel test`) under
TESTLOGS_DIR, counts test cases, and adds the stage lines of RESULTS_FILE
("<stage> <passed> <failed> <skipped>"). Prints failures, then a last line
"N passed, M failed, K skipped". Exits 1 when anything failed.
"""
import os
import sys
import xml.etree.ElementTree as ET


def bazel_counts(root):
    passed = failed = skipped = 0
    failures = []
    for dirpath, _, files in os.walk(root, followlinks=True):
        if "test.xml" not in files:
            continue
        path = os.path.join(dirpath, "test.xml")
        target = os.path.relpath(dirpath, root)
        try:
            tree = ET.parse(path)
        except ET.ParseError:
            failed += 1
            failures.append(f"{target}: unreadable test.xml")
            continue
        cases = list(tree.iter("testcase"))
        if not cases:
            # A test binary that is not GoogleTest (or crashed before
            # writing cases): Bazel still records one testsuite with
            # failures/errors counts.
            for suite in tree.iter("testsuite"):
                if int(suite.get("failures", 0)) or int(suite.get("errors", 0)):
                    failed += 1
                    failures.append(f"{target}: failed")
                else:
                    passed += 1
            continue
        for case in cases:
            name = f"{target}: {case.get('classname', '')}.{case.get('name', '')}"
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(name)
            elif case.find("skipped") is not None or case.get("result") == "skipped" \
                    or case.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped, failures


def main():
    testlogs, results = sys.argv[1], sys.argv[2]
    p, f, s, failures = bazel_counts(testlogs) if os.path.isdir(testlogs) else (0, 0, 0, [])
    print(f"bazel tests: {p} passed, {f} failed, {s} skipped")
    if os.path.exists(results):
        for line in open(results):
            parts = line.split()
            if len(parts) != 4:
                continue
            stage, sp, sf, ss = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
            print(f"{stage}: {sp} passed, {sf} failed, {ss} skipped")
            p, f, s = p + sp, f + sf, s + ss
            if sf:
                failures.append(f"{stage}: {sf} failed")
    for line in failures:
        print(f"FAILED {line}")
    print(f"{p} passed, {f} failed, {s} skipped")
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main())
