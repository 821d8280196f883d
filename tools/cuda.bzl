"""A small cuda_library macro: nvcc compiles each .cu to an object file in a
genrule, and a cc_library links the objects with cudart.

GPU code is compiled for Hopper (sm_90a machine code plus compute_90 PTX) on
every build, including CI machines that have nvcc but no GPU.
"""

NVCC = "/usr/local/cuda/bin/nvcc"

NVCC_FLAGS = [
    "-std=c++20",
    "-O3",
    "--expt-relaxed-constexpr",
    "-gencode=arch=compute_90a,code=sm_90a",
    "-gencode=arch=compute_90,code=compute_90",
    "-Xcompiler=-fPIC",
    "-lineinfo",
    "-I.",
    "-I$(GENDIR)",
    "-I/usr/local/cuda/include",
]

def cuda_library(name, srcs, hdrs = [], deps = [], cu_deps = [], copts = [], **kwargs):
    """Compiles `srcs` (.cu) with nvcc and wraps them in a cc_library.

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
            cmd = " ".join([NVCC] + NVCC_FLAGS + copts + ["-c", "$(location " + src + ")", "-o", "$@"]),
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
