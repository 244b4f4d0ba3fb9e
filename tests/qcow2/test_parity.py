#!/usr/bin/python3
"""Answers of qemu-img that vmstor-img must give too, each on an image made here by qemu-img/qemu-io:
a 0-byte image's map, resize to 0, check of an image with an external data file, compare -s against raw
where clusters were discarded, compare's size-mismatch warning, measure's bitmaps size, check -r of a
dirty image with lazy refcounts (-r leaks gives up as qemu-img; -r all rebuilds where qemu-img does)."""
import os
import shutil
import subprocess
import unittest

import difftest as dt


def qemu_io(fmt, path, *commands):
    args = ["qemu-io", "-f", fmt]
    for c in commands:
        args += ["-c", c]
    subprocess.run(args + [path], check=True, capture_output=True)


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


class ParityTest(dt.ScratchCase):
    def same(self, args, what, stderr=False):
        """Both tools, run in the scratch directory: the same exit code and stdout (and message)."""
        expected, actual = dt.qemu(*args, cwd=self.scratch), dt.vmstor(*args, cwd=self.scratch)
        dt.assert_no_signal(self, actual, what)
        self.assertEqual(actual.returncode, expected.returncode,
                         f"{what}: {dt.describe(actual)}; qemu-img: {dt.describe(expected)}")
        self.assertEqual(actual.stdout.decode(), expected.stdout.decode(), f"{what}: stdout differs")
        if stderr:
            strip = lambda r: r.stderr.decode().replace("qemu-img: ", "").replace("vmstor-img: ", "").strip()
            self.assertEqual(strip(actual), strip(expected), f"{what}: message differs")
        return expected

    def test_map_of_a_zero_byte_image(self):
        qemu_img("create", "-f", "qcow2", self.scratch_path("z.qcow2"), "0")
        open(self.scratch_path("z.raw"), "wb").close()
        for name, fmt in (("z.qcow2", "qcow2"), ("z.raw", "raw")):
            for output in ("json", "human"):
                self.same(["map", "-f", fmt, f"--output={output}", name], f"map --output={output} of 0-byte {fmt}")

    def test_resize_to_zero_is_refused(self):
        for args in (["--shrink", "img.qcow2", "0"], ["img.qcow2", "0"], ["--shrink", "img.qcow2", "--", "-16M"]):
            qemu_img("create", "-f", "qcow2", self.scratch_path("img.qcow2"), "16M")
            self.same(["resize", *args], f"resize {' '.join(args)}", stderr=True)
            info = dt.run(["qemu-img", "info", "--output=json", "img.qcow2"], cwd=self.scratch)
            self.assertIn(b'"virtual-size": 16777216', info.stdout, f"resize {' '.join(args)} changed the size")

    def test_check_of_an_image_with_an_external_data_file(self):
        subprocess.run(["qemu-img", "create", "-f", "qcow2", "-o", "data_file=data.raw", "img.qcow2", "16M"],
                       cwd=self.scratch, check=True, capture_output=True)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 1 0 192k", "-c", "write -P 2 8M 64k", "img.qcow2"],
                       cwd=self.scratch, check=True, capture_output=True)
        for output in ("human", "json"):
            self.same(["check", f"--output={output}", "img.qcow2"], f"check --output={output} (data file)",
                      stderr=True)

    def test_compare_strict_with_raw_after_discard(self):
        qemu_img("create", "-f", "qcow2", self.scratch_path("q.qcow2"), "4M")
        qemu_io("qcow2", self.scratch_path("q.qcow2"), "write -P 1 0 1M", "discard 0 1M", "write -P 1 512k 512k")
        subprocess.run(["truncate", "-s", "4M", self.scratch_path("s.raw")], check=True)
        qemu_io("raw", self.scratch_path("s.raw"), "write -P 1 512k 512k")
        for pair in (["q.qcow2", "s.raw"], ["s.raw", "q.qcow2"]):
            self.same(["compare", "-s", *pair], f"compare -s {' '.join(pair)}")
            self.same(["compare", *pair], f"compare {' '.join(pair)}")

    def test_compare_warns_of_a_size_mismatch(self):
        qemu_img("create", "-f", "qcow2", self.scratch_path("q.qcow2"), "4M")
        qemu_io("qcow2", self.scratch_path("q.qcow2"), "write -P 1 512k 512k")
        for size, extra in (("5M", None), ("6M", "write -P 9 5M 4k")):
            subprocess.run(["truncate", "-s", size, self.scratch_path("l.raw")], check=True)
            qemu_io("raw", self.scratch_path("l.raw"), "write -P 1 512k 512k", *([extra] if extra else []))
            for pair in (["q.qcow2", "l.raw"], ["l.raw", "q.qcow2"]):
                self.same(["compare", *pair], f"compare {' '.join(pair)} (sizes differ)")
                self.same(["compare", "-s", *pair], f"compare -s {' '.join(pair)} (sizes differ)")

    def test_measure_counts_bitmaps(self):
        img = self.scratch_path("img.qcow2")
        qemu_img("create", "-f", "qcow2", img, "3G")
        qemu_img("bitmap", "--add", img, "b0")
        qemu_img("bitmap", "--add", "-g", "512", img, "a-bitmap-with-a-long-name-" + "x" * 40)
        qemu_img("bitmap", "--add", "--disable", "-g", "2M", img, "d0")
        qemu_io("qcow2", img, "write -P 1 1M 192k")
        for extra in ([], ["-o", "cluster_size=4096"], ["-o", "cluster_size=2M"]):
            for output in ("json", "human"):
                self.same(["measure", f"--output={output}", "-O", "qcow2", *extra, "img.qcow2"],
                          f"measure {' '.join(extra)} --output={output} (3 bitmaps)")


    def dirty_lazy_image(self, name, *layout):
        """An image with lazy refcounts whose writer was killed: refcounts of its new clusters are missing."""
        path = self.scratch_path(name)
        qemu_img("create", "-f", "qcow2", "-o", "lazy_refcounts=on", path, "2G")
        for clean in layout[:-1]:
            qemu_io("qcow2", path, *clean)
        subprocess.run(["qemu-io", "-f", "qcow2", *sum((["-c", c] for c in layout[-1]), []), "-c", "sigraise 9",
                        path], capture_output=True)
        return name

    def test_repair_of_a_dirty_image_with_lazy_refcounts(self):
        # (clean sessions..., the killed one): the second leaves holes where rebuilt blocks may go
        layouts = [
            [["write -P 1 0 1M", "write -P 2 10M 3M"]],
            [["write -P 1 0 8M", "write -P 3 300M 2M"], ["discard 1M 3M", "discard 300M 1M"],
             ["write -P 2 1G 16M", "write -P 4 2M 64k"]],
        ]
        for index, layout in enumerate(layouts):
            for mode in ("leaks", "all"):
                source = self.dirty_lazy_image(f"dirty{index}.qcow2", *layout)
                for tool in ("qemu", "vmstor"):
                    shutil.copyfile(self.scratch_path(source), self.scratch_path(f"{tool}.qcow2"))
                what = f"check -r {mode} of a dirty image with lazy refcounts (layout {index})"
                expected = dt.qemu("check", "-r", mode, "--output=json", "qemu.qcow2", cwd=self.scratch)
                actual = dt.vmstor("check", "-r", mode, "--output=json", "vmstor.qcow2", cwd=self.scratch)
                dt.assert_no_signal(self, actual, what)
                self.assertEqual(actual.returncode, expected.returncode,
                                 f"{what}: {dt.describe(actual)}; qemu-img: {dt.describe(expected)}")
                self.assertEqual(actual.stdout.decode().replace("vmstor.qcow2", "IMG"),
                                 expected.stdout.decode().replace("qemu.qcow2", "IMG"), f"{what}: the report differs")
                strip = lambda r: r.stderr.decode().replace("qemu-img: ", "").replace("vmstor-img: ", "")
                self.assertEqual(strip(actual), strip(expected), f"{what}: the messages differ")
                after = [dt.qemu("check", "--output=json", f"{tool}.qcow2", cwd=self.scratch)
                         for tool in ("qemu", "vmstor")]
                self.assertEqual(after[1].returncode, after[0].returncode, f"qemu-img check after {what}")
                self.assertEqual(after[1].stdout.decode().replace("vmstor.qcow2", "IMG"),
                                 after[0].stdout.decode().replace("qemu.qcow2", "IMG"),
                                 f"qemu-img check after {what}: not what qemu-img's repair left")


if __name__ == "__main__":
    dt.main()
