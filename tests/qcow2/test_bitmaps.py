#!/usr/bin/python3
"""Persistent dirty bitmaps stay as qemu-img leaves them when vmstor-img writes an image: each case is
prepared the same way twice with qemu-img/qemu-io, then one copy gets qemu-img's command and the other
vmstor-img's. Afterwards the exit codes agree, every bitmap has the same flags (in-use cleared on a
clean close), granularity and dirty bits (read from the file), qemu-img check agrees, and
qemu-img convert --bitmaps copies vmstor-img's result."""
import json
import os
import subprocess
import unittest

import bitmap_reader
import difftest as dt


def qemu_io(path, *commands):
    args = ["qemu-io", "-f", "qcow2"]
    for c in commands:
        args += ["-c", c]
    subprocess.run(args + [path], check=True, capture_output=True)


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def bitmapped(path, size="64M"):
    """An image with an enabled bitmap, an enabled one of 4 KiB granularity and a disabled one, each
    with dirty bits, and with data."""
    qemu_img("create", "-f", "qcow2", path, size)
    qemu_img("bitmap", "--add", path, "b0")
    qemu_img("bitmap", "--add", "-g", "4096", path, "fine")
    qemu_img("bitmap", "--add", path, "d0")
    qemu_io(path, "write -P 1 1M 192k", "write -P 2 40M 8k")
    qemu_img("bitmap", "--disable", path, "d0")


def prepare_plain(d):
    bitmapped(os.path.join(d, "img.qcow2"))


def prepare_snapshot(d):
    prepare_plain(d)
    qemu_img("snapshot", "-c", "s1", os.path.join(d, "img.qcow2"))


def prepare_in_use(d):
    """Bitmaps left in use (inconsistent) by a writer that was killed."""
    prepare_plain(d)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 6 2M 64k", "-c", "sigraise 9",
                    os.path.join(d, "img.qcow2")], capture_output=True)


def prepare_disabled_only(d):
    path = os.path.join(d, "img.qcow2")
    qemu_img("create", "-f", "qcow2", path, "16M")
    qemu_img("bitmap", "--add", "--disable", path, "d0")
    qemu_img("snapshot", "-c", "s1", path)


def prepare_commit(d):
    base, top = os.path.join(d, "base.qcow2"), os.path.join(d, "top.qcow2")
    bitmapped(base)
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
    qemu_img("bitmap", "--add", top, "t0")
    qemu_io(top, "write -P 3 8M 64k", "write -P 4 50M 4k", "write -z 60M 128k", "write -P 5 63M 1k")


def prepare_rebase(d):
    old, new, top = (os.path.join(d, n) for n in ("old.qcow2", "new.qcow2", "img.qcow2"))
    qemu_img("create", "-f", "qcow2", old, "64M")
    qemu_io(old, "write -P 7 0 128k", "write -P 8 20M 4k")
    qemu_img("create", "-f", "qcow2", new, "64M")
    qemu_io(new, "write -P 7 0 64k")
    qemu_img("create", "-f", "qcow2", "-b", "old.qcow2", "-F", "qcow2", top)
    qemu_img("bitmap", "--add", top, "b0")
    qemu_img("bitmap", "--add", "-g", "4096", top, "fine")


# (label, preparation, command with IMG for the image, images to compare afterwards)
CASES = [
    ("snapshot create", prepare_plain, ["snapshot", "-c", "s2", "img.qcow2"], ["img.qcow2"]),
    ("snapshot delete", prepare_snapshot, ["snapshot", "-d", "s1", "img.qcow2"], ["img.qcow2"]),
    ("snapshot apply refused", prepare_snapshot, ["snapshot", "-a", "s1", "img.qcow2"], ["img.qcow2"]),
    ("snapshot apply refused with only a disabled bitmap", prepare_disabled_only,
     ["snapshot", "-a", "s1", "img.qcow2"], ["img.qcow2"]),
    ("resize grow", prepare_plain, ["resize", "img.qcow2", "+64M"], ["img.qcow2"]),
    ("resize grow odd", prepare_plain, ["resize", "img.qcow2", "100000256"], ["img.qcow2"]),
    ("resize shrink into dirty bits", prepare_plain, ["resize", "--shrink", "img.qcow2", "41947136"],
     ["img.qcow2"]),
    ("resize refused with inconsistent bitmaps", prepare_in_use, ["resize", "img.qcow2", "+1M"], ["img.qcow2"]),
    ("snapshot create with inconsistent bitmaps", prepare_in_use, ["snapshot", "-c", "s2", "img.qcow2"],
     ["img.qcow2"]),
    ("check repair", prepare_plain, ["check", "-r", "all", "img.qcow2"], ["img.qcow2"]),
    ("commit into a base with bitmaps", prepare_commit, ["commit", "top.qcow2"], ["base.qcow2", "top.qcow2"]),
    ("commit -d", prepare_commit, ["commit", "-d", "top.qcow2"], ["base.qcow2", "top.qcow2"]),
]
# (label, preparation, command, images): vmstor-img writes whole clusters (see check_case)
COARSER = [
    ("rebase writes", prepare_rebase, ["rebase", "-b", "new.qcow2", "-F", "qcow2", "img.qcow2"], ["img.qcow2"]),
]


def covering(ranges, granularity, cluster):
    """`ranges` of dirty bits widened to whole clusters of the image (merged)."""
    per = cluster // granularity
    out = []
    for a, b in ranges:
        a, b = a // per * per, -(-b // per) * per
        if out and out[-1][1] >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def bits(ranges):
    return {n for a, b in ranges for n in range(a, b)}


def message(result):
    """stderr without the program's name, so that both tools' messages compare."""
    text = result.stderr.decode(errors="replace").strip()
    for prefix in ("qemu-img: ", "vmstor-img: "):
        text = text.replace(prefix, "")
    return text


def check_json(path):
    r = subprocess.run(["qemu-img", "check", "--output=json", path], capture_output=True)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = {}
    return r.returncode, {k: out.get(k, 0) for k in ("corruptions", "leaks", "check-errors")}


def info_bitmaps(path):
    r = subprocess.run(["qemu-img", "info", "--output=json", path], capture_output=True, check=True)
    return json.loads(r.stdout).get("format-specific", {}).get("data", {}).get("bitmaps")


class BitmapTest(dt.ScratchCase):
    def check_case(self, case):
        label, prepare, command, compared = case["label"], case["prepare"], case["command"], case["images"]
        theirs, mine = self.scratch_path("qemu"), self.scratch_path("vmstor")
        for d in (theirs, mine):
            os.mkdir(d)
            prepare(d)
        expected = dt.qemu(*command, cwd=theirs)
        actual = dt.vmstor(*command, cwd=mine)
        what = f"vmstor-img {' '.join(command)} ({label})"
        dt.assert_no_signal(self, actual, what)
        self.assertEqual(actual.returncode, expected.returncode,
                         f"{what}: {dt.describe(actual)}; qemu-img: {dt.describe(expected)}")
        if expected.returncode != 0:
            self.assertEqual(message(actual), message(expected), f"{what}: another message than qemu-img's")
        for name in compared:
            mine_path, theirs_path = os.path.join(mine, name), os.path.join(theirs, name)
            want, got = bitmap_reader.read_bitmaps(theirs_path), bitmap_reader.read_bitmaps(mine_path)
            self.assertTrue(want or name == "top.qcow2", f"{label}: qemu-img left no bitmaps in {name}?")
            consistent = all(b["dirty"] is not None for b in want.values())
            if case["coarser"]:
                # vmstor-img rebase writes whole clusters where qemu-img writes the differing sectors: a
                # bitmap finer than a cluster may mark more, never less.
                for bitmap_name, bitmap in want.items():
                    mine_bitmap = got.get(bitmap_name, {})
                    if bitmap["granularity"] < 65536 and mine_bitmap.get("dirty") is not None:
                        least, most = bits(bitmap["dirty"]), bits(covering(bitmap["dirty"], bitmap["granularity"], 65536))
                        self.assertTrue(least <= bits(mine_bitmap["dirty"]) <= most,
                                        f"{what}: bitmap {bitmap_name} of {name} marks {mine_bitmap['dirty']}, "
                                        f"qemu-img {bitmap['dirty']}")
                        bitmap["dirty"] = mine_bitmap["dirty"]
            self.assertEqual(got, want, f"{what}: the bitmaps of {name} differ from what qemu-img leaves")
            self.assertEqual(info_bitmaps(mine_path), info_bitmaps(theirs_path),
                             f"{what}: qemu-img info's bitmaps of {name} differ")
            self.assertEqual(check_json(mine_path), check_json(theirs_path),
                             f"{what}: qemu-img check of {name} differs from the check of qemu-img's result")
            if want and consistent:
                copied = dt.run(["qemu-img", "convert", "--bitmaps", "-O", "qcow2", mine_path,
                                 os.path.join(mine, "copy-" + name)], cwd=mine)
                dt.assert_ok(self, copied, f"{what}: qemu-img convert --bitmaps of {name}")


dt.add_cases(BitmapTest, "bitmaps",
             [{"name": label, "label": label, "prepare": prepare, "command": command, "images": images,
               "coarser": (label, prepare, command, images) in COARSER}
              for label, prepare, command, images in CASES + COARSER],
             BitmapTest.check_case)

if __name__ == "__main__":
    dt.main()
