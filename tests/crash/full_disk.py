#!/usr/bin/python3
"""A full disk never corrupts an image: vmstor-img and qemu-img side by side on a real, small ext4
(a loop-mounted file) filled until only a little space is left, so that the commands meet a real ENOSPC.

For each case and each amount of free space, both tools run the same command on the same image. The
reference (qemu-img) must behave as the case describes, which proves the disk really was full; vmstor-img
must then report the error, and leave what qemu-img leaves: an image that qemu-img check finds clean
(or with leaks only) whose guest data and virtual size are the old ones or the new ones, and no file at
all after a failed create.

usage: full_disk.py VMSTOR_IMG   (as root: it mounts a loop file system in a temporary directory)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SIZE = 64 << 20
PATTERN = [(0, 1 << 20, 0xAB), (3 << 20, 256 << 10, 0xCD)]
# (name, the command after the tool's name, whether it changes an existing image (IMG) or makes NEW)
CASES = [
    ("resize falloc 2G", ["resize", "--preallocation=falloc", "IMG", "2G"], True),
    ("resize full 1G", ["resize", "--preallocation=full", "IMG", "1G"], True),
    ("resize metadata 60G", ["resize", "--preallocation=metadata", "IMG", "60G"], True),
    ("create metadata 20G",
     ["create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "NEW", "20G"], False),
    ("create falloc 1G", ["create", "-q", "-f", "qcow2", "-o", "preallocation=falloc", "NEW", "1G"], False),
    ("create full 1G", ["create", "-q", "-f", "qcow2", "-o", "preallocation=full", "NEW", "1G"], False),
    ("convert", ["convert", "-O", "qcow2", "BIG", "NEW"], False),
]
# Free bytes left on the file system for each case (the 40 KB to 1.5 MB).
FREE = [40 << 10, 300 << 10, 1500 << 10]


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def must(args):
    r = run(args)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def virtual_size(path):
    return json.loads(must(["qemu-img", "info", "-U", "--output=json", path]).stdout)["virtual-size"]


def same_guest_data(path, template):
    """True when the image reads as the template, and as zeroes past the template's end (qemu-img
    compare without -s)."""
    r = run(["qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", template, path])
    if r.returncode > 1:
        raise RuntimeError(f"qemu-img compare {path}: {r.stderr.strip()}")
    return r.returncode == 0


def fill(mnt, free):
    """Leaves about `free` bytes available on the file system (a filler file takes the rest)."""
    filler = os.path.join(mnt, "filler")
    if os.path.exists(filler):
        os.unlink(filler)
    os.sync()
    avail = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    if avail > free:
        must(["fallocate", "-l", str(avail - free), filler])
    os.sync()


def check(path):
    """None when qemu-img check finds the image clean or with leaks only; else what it said."""
    r = run(["qemu-img", "check", "-U", path])
    if r.returncode in (0, 3):
        return None
    return f"qemu-img check exit {r.returncode}: " + (r.stdout + r.stderr).strip().replace("\n", " | ")[:600]


def one(tool, case, free, mnt, template, big):
    """Runs one case with one tool; returns (problem or None, did the command fail)."""
    name, command, on_image = case
    for f in os.listdir(mnt):
        if f not in ("lost+found",):
            os.unlink(os.path.join(mnt, f))
    img, new = os.path.join(mnt, "img.qcow2"), os.path.join(mnt, "new.qcow2")
    src = os.path.join(mnt, "big.qcow2")
    if on_image:
        shutil.copyfile(template, img)
    if command[0] == "convert":
        shutil.copyfile(big, src)
    fill(mnt, free)
    args = [a.replace("IMG", img).replace("NEW", new).replace("BIG", src) for a in command]
    r = run([tool] + args)
    failed = r.returncode != 0
    if failed and "No space left on device" not in r.stderr:
        return f"exit {r.returncode} without naming the error: {r.stderr.strip()}", failed
    if not failed and r.stderr.strip():
        return f"succeeded but printed: {r.stderr.strip()}", failed
    if on_image:
        problem = check(img)
        if problem:
            return problem, failed
        size = virtual_size(img)
        if size not in (SIZE, new_size(command)) or not same_guest_data(img, template):
            return f"guest view is neither the old nor the new: virtual size {size}", failed
        if failed and size != SIZE:
            return f"failed but left the new virtual size {size}", failed
    elif failed:
        # qemu-img convert leaves a partial target when the copy fails (it removes only what its create
        # step failed to make); vmstor-img removes it, as both remove a failed create's file.
        if os.path.exists(new) and not (tool == "qemu-img" and command[0] == "convert"):
            return f"failed and left {os.path.basename(new)} behind ({os.path.getsize(new)} bytes)", failed
    else:
        problem = check(new)
        if problem:
            return problem, failed
    return None, failed


def new_size(command):
    return int(command[-1][:-1]) << (30 if command[-1].endswith("G") else 20)


def main():
    tool = sys.argv[1]
    work = tempfile.mkdtemp(prefix="vmstor-fulldisk-")
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    mounted = False
    failures = []
    try:
        fs = os.path.join(work, "fs.img")
        with open(fs, "wb") as f:
            f.truncate(16 << 20)
        must(["mkfs.ext4", "-q", "-b", "1024", "-m", "0", "-O", "^has_journal", fs])
        must(["mount", "-o", "loop", fs, mnt])
        mounted = True
        template, big = os.path.join(work, "img.qcow2"), os.path.join(work, "big.qcow2")
        must(["qemu-img", "create", "-q", "-f", "qcow2", template, str(SIZE)])
        io = ["qemu-io", "-f", "qcow2"]
        for off, length, value in PATTERN:
            io += ["-c", f"write -P {value:#x} {off} {length}"]
        must(io + [template])
        must(["qemu-img", "create", "-q", "-f", "qcow2", big, "8M"])
        must(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 6M", big])
        cases = 0
        for case in CASES:
            for free in FREE:
                if case[1][0] == "convert" and free > 1 << 20:
                    continue  # the target fits
                reference, ref_failed = one("qemu-img", case, free, mnt, template, big)
                if reference or not ref_failed:
                    failures.append(f"{case[0]}, {free} bytes free: qemu-img (the reference) "
                                    f"{'did not fail' if not ref_failed else reference}")
                    continue
                problem, failed = one(tool, case, free, mnt, template, big)
                if not failed:
                    problem = problem or "succeeded where qemu-img ran out of space"
                if problem:
                    failures.append(f"{case[0]}, {free} bytes free: vmstor-img {problem}")
                cases += 1
        print(f"{cases} full-disk cases compared with qemu-img")
    finally:
        if mounted:
            for attempt in range(10):
                if run(["umount", mnt]).returncode == 0:
                    break
                subprocess.run(["sleep", "0.5"])
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
