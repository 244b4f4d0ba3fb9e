#!/usr/bin/python3
"""Images written by vmstor-img convert -O qcow2 (from every good corpus image, and with every create
option) pass qemu-img check, qemu-img compare calls them identical to the source, and they are no
less sparse than what qemu-img convert makes from the same source."""
import unittest

import difftest as dt

KiB, MiB = 1024, 1024 * 1024

# -o option sets for the output, each applied to a few sources.
OPTION_SETS = [
    {"compat": "0.10"}, {"cluster_size": 512}, {"cluster_size": 4 * KiB}, {"cluster_size": 2 * MiB},
    {"refcount_bits": 1}, {"refcount_bits": 64}, {"extended_l2": "on"}, {"lazy_refcounts": "on"},
    {"preallocation": "metadata"}, {"compression_type": "zstd"},
]
OPTION_SOURCES = ["mixed-source.raw", "chain3-top.qcow2", "snapshots-1.1.qcow2", "extl2-cl65536.qcow2",
                  "compressed-zstd-rewritten.qcow2"]


def data_bytes(case, path):
    """Bytes qemu-img map reports as data (allocated, not zero) in a qcow2 image."""
    result = dt.qemu("map", "--output=json", "-f", "qcow2", path)
    dt.assert_ok(case, result, "qemu-img map")
    return sum(e["length"] for e in dt.load_json(case, result, "qemu-img map") if e["data"])


class ConvertToQcow2Test(dt.ScratchCase):
    def convert(self, image, values):
        options = ",".join(f"{k}={v}" for k, v in values.items())
        extra = ["-o", options] if options else []
        mine, theirs = self.scratch_path("vmstor.qcow2"), self.scratch_path("qemu.qcow2")
        label = f"vmstor-img convert -O qcow2 {' '.join(extra)} {image['name']}"
        dt.assert_ok(self, dt.qemu("convert", "-f", image["format"], "-O", "qcow2", *extra, image["file"], theirs),
                     "qemu-img convert")
        dt.assert_ok(self, dt.vmstor("convert", "-f", image["format"], "-O", "qcow2", *extra, image["file"], mine),
                     label)
        check = dt.qemu("check", "-f", "qcow2", mine)
        self.assertEqual(check.returncode, 0, f"qemu-img check after {label}: {dt.describe(check)}\n"
                         + check.stdout.decode(errors="replace")[:2000])
        compare = dt.qemu("compare", "-f", image["format"], "-F", "qcow2", image["file"], mine)
        self.assertEqual(compare.returncode, 0, f"qemu-img compare after {label}: {dt.describe(compare)} "
                         + compare.stdout.decode(errors="replace"))
        info = dt.load_json(self, dt.qemu("info", "--output=json", "-f", "qcow2", mine), "qemu-img info")
        data = info["format-specific"]["data"]
        for key, value in values.items():
            field = {"cluster_size": None, "compat": "compat", "refcount_bits": "refcount-bits",
                     "extended_l2": "extended-l2", "lazy_refcounts": "lazy-refcounts",
                     "compression_type": "compression-type"}.get(key)
            if key == "cluster_size":
                self.assertEqual(info["cluster-size"], value, f"{label}: cluster size not applied")
            elif field:
                expected = {"on": True, "off": False}.get(value, value)
                self.assertEqual(data[field], expected, f"{label}: option {key} not applied")
        mine_data, their_data = data_bytes(self, mine), data_bytes(self, theirs)
        self.assertLessEqual(mine_data, their_data,
                             f"{label}: {mine_data} bytes of data, qemu-img convert leaves {their_data}: "
                             "zero or unallocated ranges were written out")

    def check_default(self, image):
        self.convert(image, {})

    def check_options(self, case):
        self.convert(case["image"], case["options"])

    def check_snapshot(self, case):
        """convert -l: the guest data as it was at an internal snapshot, the same bytes qemu-img gives."""
        image, snapshot = case["image"], case["snapshot"]
        mine, theirs = self.scratch_path("vmstor.raw"), self.scratch_path("qemu.raw")
        label = f"vmstor-img convert -l {snapshot} {image['name']}"
        dt.assert_ok(self, dt.qemu("convert", "-f", "qcow2", "-O", "raw", "-l", snapshot, image["file"], theirs),
                     "qemu-img convert -l")
        dt.assert_ok(self, dt.vmstor("convert", "-f", "qcow2", "-O", "raw", "-l", snapshot, image["file"], mine),
                     label)
        compare = dt.qemu("compare", "-f", "raw", "-F", "raw", theirs, mine)
        self.assertEqual(compare.returncode, 0, f"{label} differs from qemu-img's: {dt.describe(compare)} "
                         + compare.stdout.decode(errors="replace"))
        current = dt.qemu("compare", "-f", "qcow2", "-F", "raw", image["file"], mine)
        self.assertNotEqual(current.returncode, 0, f"{label} gave the current data, not the snapshot's")

    def test_convert_of_a_missing_snapshot_fails_like_qemu_img(self):
        image = sources["snapshots-1.1.qcow2"]
        for tool in (dt.qemu, dt.vmstor):
            result = tool("convert", "-f", "qcow2", "-O", "raw", "-l", "no-such", image["file"],
                          self.scratch_path("missing.raw"))
            self.assertNotEqual(result.returncode, 0, f"{tool.__name__} convert -l no-such succeeded")


dt.add_cases(ConvertToQcow2Test, "convert_qcow2", dt.images(kind="good"), ConvertToQcow2Test.check_default)
sources = {i["name"]: i for i in dt.images(kind="good")}
dt.add_cases(ConvertToQcow2Test, "convert_qcow2_with",
             [{"name": f"{s}-{'-'.join(f'{k}={v}' for k, v in o.items())}", "image": sources[s], "options": o}
              for o in OPTION_SETS for s in OPTION_SOURCES],
             ConvertToQcow2Test.check_options)
dt.add_cases(ConvertToQcow2Test, "convert_snapshot",
             [{"name": f"{image}-{snapshot}", "image": sources[image], "snapshot": snapshot}
              for image in ("snapshots-0.10.qcow2", "snapshots-1.1.qcow2") for snapshot in ("first", "second", "1")],
             ConvertToQcow2Test.check_snapshot)

if __name__ == "__main__":
    dt.main()
