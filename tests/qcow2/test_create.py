#!/usr/bin/python3
"""Images made by vmstor-img create pass qemu-img check and look, to qemu-img, like the image
qemu-img create makes with the same options (info fields, map, contents); invalid option sets are
refused like qemu-img refuses them."""
import os
import unittest

import difftest as dt

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024

# (label, format, -o options, size, backing corpus image and its format)
CREATE_CASES = [("qcow2-default", "qcow2", {}, 4 * MiB, None)]
CREATE_CASES += [(f"compat-{c}", "qcow2", {"compat": c}, 4 * MiB, None) for c in ("0.10", "1.1")]
CREATE_CASES += [(f"cluster-{s}", "qcow2", {"cluster_size": s}, 16 * MiB, None)
                 for s in (512, 1 * KiB, 4 * KiB, 64 * KiB, 256 * KiB, 2 * MiB)]
CREATE_CASES += [(f"refcount-{b}", "qcow2", {"refcount_bits": b}, 4 * MiB, None) for b in (1, 2, 4, 8, 16, 32, 64)]
CREATE_CASES += [(f"prealloc-{p}", "qcow2", {"preallocation": p}, 8 * MiB + 512, None)
                 for p in ("off", "metadata", "falloc", "full")]
CREATE_CASES += [(f"raw-prealloc-{p}", "raw", {"preallocation": p}, 3 * MiB + 512, None)
                 for p in ("off", "falloc", "full")]
CREATE_CASES += [
    ("lazy-refcounts", "qcow2", {"lazy_refcounts": "on"}, 4 * MiB, None),
    ("extended-l2", "qcow2", {"extended_l2": "on"}, 4 * MiB, None),
    ("extended-l2-cl16k", "qcow2", {"extended_l2": "on", "cluster_size": 16 * KiB}, 4 * MiB, None),
    ("zstd", "qcow2", {"compression_type": "zstd"}, 4 * MiB, None),
    ("odd-size", "qcow2", {}, 1000448, None),
    ("sparse-1t", "qcow2", {}, 1024 * GiB, None),
    ("sparse-16g-metadata", "qcow2", {"preallocation": "metadata"}, 16 * GiB, None),
    ("v2-cl512-refcount16", "qcow2", {"compat": "0.10", "cluster_size": 512}, 64 * MiB, None),
    ("backing-raw", "qcow2", {}, 4 * MiB, ("base.raw", "raw")),
    ("backing-qcow2", "qcow2", {}, 4 * MiB, ("base.qcow2", "qcow2")),
    ("backing-larger", "qcow2", {}, 8 * MiB, ("over-raw.qcow2", "qcow2")),
    ("backing-extended-l2", "qcow2", {"extended_l2": "on"}, 4 * MiB, ("base.qcow2", "qcow2")),
]

# Option sets qemu-img refuses; vmstor-img must refuse them the same way.
INVALID_CASES = [
    ("cluster-not-power-of-two", {"cluster_size": 1000}),
    ("cluster-too-small", {"cluster_size": 256}),
    ("cluster-too-large", {"cluster_size": 4 * MiB}),
    ("refcount-bits-3", {"refcount_bits": 3}),
    ("refcount-bits-128", {"refcount_bits": 128}),
    ("v2-lazy-refcounts", {"compat": "0.10", "lazy_refcounts": "on"}),
    ("v2-refcount-bits-8", {"compat": "0.10", "refcount_bits": 8}),
    ("extended-l2-cl4k", {"extended_l2": "on", "cluster_size": 4 * KiB}),
    ("v2-zstd", {"compat": "0.10", "compression_type": "zstd"}),
    ("unknown-compat", {"compat": "2.0"}),
    ("unknown-preallocation", {"preallocation": "everything"}),
]

# Fields that legitimately differ between two files made by two tools.
FILE_SPECIFIC = {"filename", "actual-size"}


def options(values):
    return ",".join(f"{k}={v}" for k, v in values.items())


def create_args(fmt, values, path, size, backing):
    args = ["create", "-q", "-f", fmt]
    if values:
        args += ["-o", options(values)]
    if backing:
        args += ["-b", os.path.join(dt.corpus_dir(), backing[0]), "-F", backing[1]]
    return args + [path, str(size)]


def map_without_offsets(case, path, fmt):
    """qemu-img map with host offsets dropped and neighbours with the same flags merged again
    (qemu-img splits ranges where the host offsets are not contiguous). For data ranges 'zero'
    only tells whether the host file has a hole there, which is the tool's business."""
    result = dt.qemu("map", "--output=json", "-f", fmt, path)
    dt.assert_ok(case, result, f"qemu-img map {path}")
    merged = []
    for entry in dt.load_json(case, result, "qemu-img map"):
        entry = {k: v for k, v in entry.items() if k != "offset" and not (k == "zero" and entry["data"])}
        last = merged[-1] if merged else None
        if last and set(last) == set(entry) and all(last[k] == entry[k] for k in entry if k not in ("start", "length")):
            last["length"] += entry["length"]
        else:
            merged.append(entry)
    return merged


class CreateTest(dt.ScratchCase):
    def check_case(self, case):
        label, fmt, values, size, backing = case
        mine, theirs = self.scratch_path("vmstor." + fmt), self.scratch_path("qemu." + fmt)
        dt.assert_ok(self, dt.qemu(*create_args(fmt, values, theirs, size, backing)), "qemu-img create")
        dt.assert_ok(self, dt.vmstor(*create_args(fmt, values, mine, size, backing)), f"vmstor-img create {label}")
        if fmt == "qcow2":
            check = dt.qemu("check", "-f", fmt, mine)
            self.assertEqual(check.returncode, 0, f"qemu-img check of vmstor-img's image: {dt.describe(check)}\n"
                             + check.stdout.decode(errors="replace")[:2000])
        expected = dt.load_json(self, dt.qemu("info", "--output=json", "-f", fmt, theirs), "qemu-img info")
        actual = dt.load_json(self, dt.qemu("info", "--output=json", "-f", fmt, mine), "qemu-img info")
        problems = dt.json_diff({k: v for k, v in expected.items() if k not in FILE_SPECIFIC},
                                {k: v for k, v in actual.items() if k not in FILE_SPECIFIC})
        if values.get("preallocation") in ("falloc", "full") and actual["actual-size"] < size:
            problems.append(f"  actual-size {actual['actual-size']} < virtual size {size} with preallocation")
        if problems:
            self.fail(f"qemu-img info of vmstor-img's image ({label}) differs from qemu-img's own:\n"
                      + "\n".join(problems))
        if fmt == "qcow2":
            self.assertEqual(map_without_offsets(self, mine, fmt), map_without_offsets(self, theirs, fmt),
                             "qemu-img map (offsets aside) differs between the two images")
        elif values.get("preallocation") == "full":
            # A raw map only shows the file system's extents; 'full' means zeroes really written.
            unwritten = [e for e in map_without_offsets(self, mine, fmt) if not e["data"]]
            self.assertEqual(unwritten, [], "preallocation=full left ranges unwritten (fallocate is 'falloc')")
        compare = dt.qemu("compare", "-f", fmt, "-F", fmt, theirs, mine)
        self.assertEqual(compare.returncode, 0, f"qemu-img compare: {dt.describe(compare)} {compare.stdout!r}")


class CreateInvalidTest(dt.ScratchCase):
    def check_case(self, case):
        label, values = case
        theirs = dt.qemu(*create_args("qcow2", values, self.scratch_path("qemu.qcow2"), 4 * MiB, None))
        mine = dt.vmstor(*create_args("qcow2", values, self.scratch_path("vmstor.qcow2"), 4 * MiB, None))
        dt.assert_no_signal(self, mine, f"vmstor-img create {label}")
        self.assertEqual(mine.returncode, theirs.returncode,
                         f"vmstor-img create -o {options(values)}: {dt.describe(mine)}; qemu-img: {dt.describe(theirs)}")
        if theirs.returncode != 0:
            dt.assert_one_line_error(self, mine, f"vmstor-img create -o {options(values)}")


dt.add_cases(CreateTest, "create", [dict(name=c[0], case=c) for c in CREATE_CASES],
             lambda self, c: self.check_case(c["case"]))
dt.add_cases(CreateInvalidTest, "create_invalid", [dict(name=c[0], case=c) for c in INVALID_CASES],
             lambda self, c: self.check_case(c["case"]))

if __name__ == "__main__":
    dt.main()
