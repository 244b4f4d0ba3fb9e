#!/usr/bin/python3
"""vmstor-img resize does what qemu-img resize does on a copy of the same image: the same exit code
(growing always works, shrinking needs --shrink), then qemu-img check is clean, the virtual size is
the same and qemu-img compare calls the two results identical."""
import os
import shutil
import unittest

import difftest as dt

# (corpus image, resize arguments[, backing files to copy beside it])
CASES = [
    ("compat1.1-cl65536.qcow2", ["+1M"]),
    ("compat1.1-cl65536.qcow2", ["7340544"]),           # odd size, not a cluster multiple
    ("compat0.10-cl512.qcow2", ["+64M"]),
    ("compat1.1-cl2097152.qcow2", ["+3M"]),
    ("refcount1.qcow2", ["+1G"]),
    ("extl2-cl65536.qcow2", ["+5M"]),
    ("lazy-refcounts.qcow2", ["+1M"]),
    ("sparse-1t.qcow2", ["+1T"]),
    ("over-raw.qcow2", ["+2M"], ["base.raw"]),
    ("snapshots-1.1.qcow2", ["+1M"]),
    ("compressed-zstd-cl65536.qcow2", ["+1M"]),
    ("compat1.1-cl65536.qcow2", ["--shrink", "2M"]),     # drops written data: allowed with --shrink
    ("compat1.1-cl65536.qcow2", ["2M"]),                 # refused without --shrink
    ("compat1.1-cl65536.qcow2", ["--shrink", "3000000"]),
    ("compat0.10-cl65536.qcow2", ["--shrink", "1M"]),
    ("extl2-cl65536.qcow2", ["--shrink", "1M"]),
    ("prealloc-metadata.qcow2", ["--shrink", "1M"]),
    ("snapshots-1.1.qcow2", ["--shrink", "1M"]),
    ("base.raw", ["+1M"]),
    ("base.raw", ["--shrink", "1M"]),
    ("base.raw", ["1M"]),
    # --preallocation: the grown part is allocated as qemu-img allocates it (the same map)
    ("compat1.1-cl65536.qcow2", ["--preallocation=metadata", "+3M"]),
    ("compat1.1-cl65536.qcow2", ["--preallocation=falloc", "+1M"]),
    ("compat1.1-cl65536.qcow2", ["--preallocation=full", "7340544"]),
    ("compat0.10-cl512.qcow2", ["--preallocation=metadata", "+1M"]),
    ("extl2-cl65536.qcow2", ["--preallocation=metadata", "+5M"]),
    ("snapshots-1.1.qcow2", ["--preallocation=full", "+1M"]),
    ("over-raw.qcow2", ["--preallocation=metadata", "+2M"], ["base.raw"]),
    ("compat1.1-cl65536.qcow2", ["--preallocation=metadata", "+600M"]),  # past the first L2 table
    ("compat1.1-cl65536.qcow2", ["--preallocation=metadata", "--shrink", "1M"]),  # refused: not growing
    ("compat1.1-cl65536.qcow2", ["--preallocation=bogus", "+1M"]),                # refused
    ("base.raw", ["--preallocation=falloc", "+1M"]),
    ("base.raw", ["--preallocation=full", "+1M"]),
    ("base.raw", ["--preallocation=metadata", "+1M"]),                           # refused for raw
]


def allocation_shape(extents):
    """qemu-img map's extents without host offsets, neighbours alike merged (where clusters land differs)."""
    shape = []
    for e in extents:
        kind = (e["depth"], e["present"], e["data"], "offset" in e)
        if shape and shape[-1][2] == kind and shape[-1][0] + shape[-1][1] == e["start"]:
            shape[-1][1] += e["length"]
        else:
            shape.append([e["start"], e["length"], kind])
    return shape


class ResizeTest(dt.ScratchCase):
    def check_case(self, case):
        image, args = case["image"], case["args"]
        fmt = image["format"]
        mine, theirs = self.scratch_path("vmstor." + fmt), self.scratch_path("qemu." + fmt)
        for path in (mine, theirs):
            shutil.copyfile(dt.image_path(image), path)
        for backing in case["backing"]:  # relative backing names resolve in the scratch directory
            shutil.copyfile(os.path.join(dt.corpus_dir(), backing), self.scratch_path(backing))
        label = f"vmstor-img resize -f {fmt} {image['name']} {' '.join(args)}"
        expected = dt.qemu("resize", "-q", "-f", fmt, theirs, *args)
        actual = dt.vmstor("resize", "-q", "-f", fmt, mine, *args)
        dt.assert_no_signal(self, actual, label)
        self.assertEqual(actual.returncode, expected.returncode,
                         f"{label}: {dt.describe(actual)}; qemu-img: {dt.describe(expected)}")
        if expected.returncode != 0:
            self.assertTrue(actual.stderr.strip(), f"{label}: refused without a message on stderr")
        if fmt == "qcow2":
            check = dt.qemu("check", "-f", fmt, mine)
            self.assertEqual(check.returncode, 0, f"qemu-img check after {label}: {dt.describe(check)}\n"
                             + check.stdout.decode(errors="replace")[:2000])
        sizes = [dt.load_json(self, dt.qemu("info", "--output=json", "-f", fmt, p), "qemu-img info")["virtual-size"]
                 for p in (theirs, mine)]
        self.assertEqual(sizes[1], sizes[0], f"{label}: virtual size")
        compare = dt.qemu("compare", "-f", fmt, "-F", fmt, theirs, mine)
        self.assertEqual(compare.returncode, 0, f"qemu-img compare after {label}: {dt.describe(compare)} "
                         + compare.stdout.decode(errors="replace"))
        if any(a.startswith("--preallocation") for a in args) and expected.returncode == 0:
            shapes = [allocation_shape(dt.load_json(self, dt.qemu("map", "--output=json", "-f", fmt, p),
                                                    "qemu-img map")) for p in (theirs, mine)]
            self.assertEqual(shapes[1], shapes[0], f"{label}: what is allocated differs from qemu-img's")


sources = {i["name"]: i for i in dt.images(kind="good")}
dt.add_cases(ResizeTest, "resize", [{"name": f"{c[0]} {' '.join(c[1])}", "image": sources[c[0]], "args": c[1],
                        "backing": c[2] if len(c) > 2 else []} for c in CASES],
             ResizeTest.check_case)

if __name__ == "__main__":
    dt.main()
