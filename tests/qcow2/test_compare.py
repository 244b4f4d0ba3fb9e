#!/usr/bin/python3
"""vmstor-img compare answers as qemu-img compare does: the same exit code (0 identical, 1 different,
2 error) and the same message on stdout, plain and with -s (strict: allocation must match too)."""
import unittest

import difftest as dt

# (first, second, extra options)
PAIRS = [
    ("base.raw", "base.raw", []),
    ("over-raw.qcow2", "base.raw", []),
    ("mixed-source.raw", "compressed-zlib-cl65536.qcow2", []),
    ("compressed-zstd-cl4096.qcow2", "compressed-zlib-cl2097152.qcow2", []),
    ("compressed-zlib-cl65536.qcow2", "compressed-zlib-rewritten.qcow2", []),
    ("chain3-top.qcow2", "over-raw.qcow2", []),
    ("chain3-top.qcow2", "over-raw.qcow2", ["-s"]),
    ("over-raw.qcow2", "chain3-top.qcow2", []),
    ("empty.qcow2", "prealloc-metadata.qcow2", []),
    ("prealloc-off.qcow2", "prealloc-full.qcow2", []),
    ("prealloc-off.qcow2", "prealloc-full.qcow2", ["-s"]),
    ("compat0.10-cl512.qcow2", "compat1.1-cl512.qcow2", []),
    ("compat0.10-cl65536.qcow2", "compat1.1-cl65536.qcow2", []),
    ("refcount1.qcow2", "refcount64.qcow2", []),
    ("refcount1.qcow2", "refcount64.qcow2", ["-s"]),
    ("snapshots-0.10.qcow2", "snapshots-1.1.qcow2", []),
    ("extl2-cl16384.qcow2", "extl2-cl65536.qcow2", []),
    ("sparse-1t.qcow2", "sparse-1t.qcow2", []),
    ("extl2-over-raw.qcow2", "extl2-base.raw", []),
]


class CompareTest(unittest.TestCase):
    def check_case(self, case):
        first, second, extra = case["first"], case["second"], case["extra"]
        args = ["compare", *extra, "-f", first["format"], "-F", second["format"], first["file"], second["file"]]
        dt.assert_same_output(self, args, f"vmstor-img {' '.join(args)}")


sources = {i["name"]: i for i in dt.images(kind="good")}
dt.add_cases(CompareTest, "compare",
             [{"name": f"{a} {b} {' '.join(e)}", "first": sources[a], "second": sources[b], "extra": e}
              for a, b, e in PAIRS],
             CompareTest.check_case)

if __name__ == "__main__":
    dt.main()
