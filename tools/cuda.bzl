"""A small cuda_library macro: nvcc compiles each .cu to an object file in a
genrule, and a cc_library links the objects with cudart.

GPU code is compiled on every build, including CI machines that have nvcc but
no GPU, for every GPU generation tpserve supports (docs/gpus.md): machine code
(SASS) for each of CUDA_ARCHS, plus PTX for the newest, which the driver
JIT-compiles on GPUs newer than the list.

One GPU generation only, for a faster local build (docs/developing.md):

    bazel build --define=cuda_archs=sm_90a //...

or the same `build --define=...` line in user.bazelrc. The value is a
comma-separated list: `sm_XX` (or `sm_XXa`) adds machine code, `compute_XX`
adds PTX (e.g. `--define=cuda_archs=compute_80` builds PTX only, as the
Ampere-path check in docs/gpus.md did). Every cuda_library gets the same list,
so the probe kernel behind the start-up log (worker/cuda/device_info.cu)
speaks for all of them; tools/check_cuda_archs.sh checks the default list.
"""

NVCC = "/usr/local/cuda/bin/nvcc"

# Ampere (A100/A800), Ampere GA10x (A10, A40, 3090), Ada (L4, L40S, 4090),
# Hopper with its arch-specific instructions (H100/H200/H20), Blackwell
# datacenter (B200/GB200) and Blackwell consumer/workstation (RTX 5090,
# RTX PRO 6000); PTX for the newest. SASS of sm_XY also runs on later minor
# versions of the same major (sm_80 code on an sm_87, sm_100 on an sm_103).
CUDA_ARCHS = ["sm_80", "sm_86", "sm_89", "sm_90a", "sm_100", "sm_120", "compute_120"]

NVCC_FLAGS = [
    "-std=c++20",
    "-O3",
    "--expt-relaxed-constexpr",
    "-Xcompiler=-fPIC",
    "-lineinfo",
    "-I.",
    "-I$(GENDIR)",
    "-I/usr/local/cuda/include",
]

def gencode_flags(archs):
    """nvcc -gencode flags for a list like CUDA_ARCHS.

    Args:
      archs: "sm_XX[a]" (machine code) and "compute_XX[a]" (PTX) items.

    Returns:
      A list of -gencode flags.
    """
    flags = []
    for a in archs:
        kind, _, version = a.partition("_")
        digits = version[:-1] if version.endswith("a") else version
        if kind not in ("sm", "compute") or not digits.isdigit() or len(digits) < 2:
            fail("cuda_archs: '%s' is not sm_XX, sm_XXa, compute_XX or compute_XXa" % a)

        # nvcc runs the front end once per virtual arch: sm_120 and
        # compute_120 share one PTX.
        flags.append("-gencode=arch=compute_%s,code=%s" % (version, a))
    if not flags:
        fail("cuda_archs is empty")
    return flags

def _cuda_gencode_impl(ctx):
    archs = ctx.var.get("cuda_archs", ",".join(CUDA_ARCHS))
    flags = gencode_flags([a.strip() for a in archs.split(",") if a.strip()])
    return [platform_common.TemplateVariableInfo({"CUDA_GENCODE": " ".join(flags)})]

# Provides $(CUDA_GENCODE) to the nvcc genrules: the -gencode flags of
# --define=cuda_archs=..., or of CUDA_ARCHS by default. One instance lives in
# //tools:cuda_gencode.
cuda_gencode = rule(implementation = _cuda_gencode_impl)

def cuda_library(name, srcs, hdrs = [], deps = [], cu_deps = [], copts = [], **kwargs):
    """Compiles `srcs` (.cu) with nvcc and wraps them in a cc_library.

    Each .cu is one nvcc call for every architecture (its host side is
    compiled once); Bazel runs the calls of different files in parallel.

    Args:
      name: target name.
      srcs: .cu files.
      hdrs: headers exported to C++ users of the library.
      deps: cc_library dependencies linked into the library (their headers
        must also be listed in cu_deps when a .cu file includes them).
      cu_deps: extra header files (e.g. .cuh) the .cu files include.
      copts: extra nvcc flags.
      **kwargs: passed to the cc_library.
    """
    objs = []
    for src in srcs:
        obj = name + "_" + src.replace("/", "_").replace(".cu", ".o")
        native.genrule(
            name = obj.replace(".o", "_nvcc"),
            srcs = [src] + hdrs + cu_deps,
            outs = [obj],
            cmd = " ".join([NVCC] + NVCC_FLAGS + ["$(CUDA_GENCODE)"] + copts +
                           ["-c", "$(location " + src + ")", "-o", "$@"]),
            toolchains = ["//tools:cuda_gencode"],
            message = "nvcc " + src,
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart"],
        alwayslink = 1,
        **kwargs
    )
