#!/usr/bin/env python3
"""Lists the GPU code embedded in ELF files (nvcc objects, executables).

usage: fatbin_archs.py FILE...

For each FILE prints one line per CUDA fat binary (one per .cu file that was
linked in): "FILE: <n>: sm_80 sm_86 ... compute_120", machine code as sm_XX
(sm_XXa for arch-specific code) and PTX as compute_XX, in file order.

CI machines have nvcc but not cuobjdump (it is not in Debian's packages nor in
the nvcc wheel), so this reads the container directly: the .nv_fatbin section
holds fat binaries (magic 0xBA55ED50, a 16-byte header, then entries), each
entry a header with its kind (1 PTX, 2 ELF), its size and its arch; bit 20 of
the entry flags marks arch-specific code (sm_90a), as nvcc 13.0 writes it and
cuobjdump reads it. An uncompressed machine-code entry is cross-checked
against its own ELF header (SM number in e_flags bits 8-15).
"""
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
KIND_PTX, KIND_ELF = 1, 2
FLAG_ARCH_SPECIFIC = 1 << 20


class FormatError(Exception):
    pass


def section(data, name):
    """Bytes of the ELF64 little-endian section `name`, or None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise FormatError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    for sh_name, _, _, _, offset, size in headers:
        end = data.index(b"\0", names_off + sh_name)
        if data[names_off + sh_name:end].decode() == name:
            return data[offset:offset + size]
    return None


def entries(container, pos):
    """(codes, next position) of the fat binary at `pos`."""
    magic, _, header_size, fat_size = struct.unpack_from("<IHHQ", container, pos)
    if magic != FATBIN_MAGIC:
        raise FormatError(f"no fat binary magic at offset {pos}")
    codes = []
    e, end = pos + header_size, pos + header_size + fat_size
    while e < end:
        kind, _, entry_header, size, compressed = struct.unpack_from("<HHIQI", container, e)
        arch, = struct.unpack_from("<I", container, e + 28)
        flags, = struct.unpack_from("<Q", container, e + 40)
        suffix = "a" if flags & FLAG_ARCH_SPECIFIC else ""
        if kind == KIND_ELF:
            payload = container[e + entry_header:e + entry_header + 64]
            if compressed == 0 and payload[:4] == b"\x7fELF":
                sm = (struct.unpack_from("<I", payload, 0x30)[0] >> 8) & 0xFF
                if sm != arch:
                    raise FormatError(f"entry says sm_{arch} but its ELF says sm_{sm}")
            codes.append(f"sm_{arch}{suffix}")
        elif kind == KIND_PTX:
            codes.append(f"compute_{arch}{suffix}")
        else:
            raise FormatError(f"unknown fat binary entry kind {kind}")
        e += entry_header + size
    return codes, end


def fatbins(path):
    """One list of codes per fat binary in the ELF file at `path`."""
    with open(path, "rb") as f:
        data = f.read()
    container = section(data, ".nv_fatbin")
    if container is None:
        return []
    out, pos = [], 0
    while pos < len(container):
        # Fat binaries are 8-byte aligned; zero padding may sit between them.
        if struct.unpack_from("<I", container, pos)[0] == 0:
            pos += 8
            continue
        codes, pos = entries(container, pos)
        out.append(codes)
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    status = 0
    for path in sys.argv[1:]:
        try:
            found = fatbins(path)
        except (OSError, FormatError, struct.error, ValueError) as e:
            print(f"{path}: error: {e}")
            status = 1
            continue
        if not found:
            print(f"{path}: no GPU code")
        for i, codes in enumerate(found):
            print(f"{path}: {i}: {' '.join(codes)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
