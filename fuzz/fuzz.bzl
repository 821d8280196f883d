"""tp_fuzz_target: one libFuzzer target that is also a corpus-replay test.

With --config=fuzz (clang, see .bazelrc) the target links libFuzzer's main
and is a fuzzer. In every other build it links standalone_main.cc instead, so
`bazel test //fuzz/...` (and the ASan build) replays the checked-in corpus:
inputs that once crashed keep being run.
"""

def tp_fuzz_target(name, srcs, deps = [], data = []):
    corpus = "corpus/" + name.replace("_fuzzer", "")
    native.cc_test(
        name = name,
        srcs = srcs,
        deps = deps + [":fuzz_util"] + select({
            ":libfuzzer": [],
            "//conditions:default": [":standalone_main"],
        }),
        linkopts = select({
            ":libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        # libFuzzer: run the corpus once and stop (-runs=0); the standalone
        # main ignores flags.
        args = ["-runs=0", "fuzz/" + corpus],
        data = native.glob([corpus + "/**"]) + data,
        # Static: faster calls while fuzzing, and a binary that runs when copied.
        linkstatic = True,
        tags = ["fuzz"],
    )
