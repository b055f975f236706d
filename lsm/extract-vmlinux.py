"""Extracts the uncompressed ELF vmlinux from a bzImage/vmlinuz, so qemu can
boot it through PVH without decompressing it under software emulation.

    python3 extract-vmlinux.py <vmlinuz> <vmlinux-out>
"""
import gzip
import lzma
import subprocess
import sys

image = open(sys.argv[1], "rb").read()
MAGICS = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x02\x21\x4c\x18", "lz4"),  # Debian's cloud kernels
]


def decompress(kind, data):
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(data)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=__import__("io").BytesIO(data)).read()
    tool = {"zstd": ["zstd", "-d", "-c"], "lz4": ["lz4", "-d", "-c"]}[kind]
    return subprocess.run(tool, input=data, capture_output=True).stdout


for magic, kind in MAGICS:
    start = image.find(magic)
    while start != -1:
        try:
            out = decompress(kind, image[start:])
        except Exception:
            out = b""
        if out[:4] == b"\x7fELF":
            open(sys.argv[2], "wb").write(out)
            print(f"{kind} at {start}: {len(out)} bytes")
            sys.exit(0)
        start = image.find(magic, start + 1)
sys.exit("no compressed ELF kernel found in " + sys.argv[1])
