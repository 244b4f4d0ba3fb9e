#!/usr/bin/python3
"""Every write operation of every writing vmstor-img command failed in turn, as QEMU's iotest 026 does
with blkdebug: fault_img runs the command in-process with the engine's FaultInjection hook, first to
count the file operations it reaches (writes, syncs, truncates, fallocates), then once for every N,
failing the N-th of them with ENOSPC and, separately, with EIO. After each failure:

- the command reported it: a non-zero exit and a message naming the error;
- qemu-img check finds the image(s) clean, or with leaked clusters only;
- the guest-visible state (virtual size, guest data through qemu-img convert -O raw, snapshot names and
  each snapshot's data) is the state before the command or the state after it (commit: the top image's
  guest view is unchanged, as its base may be partly written, like qemu-img's; check -r: the guest view
  is unchanged and check -r all then repairs the image);
- a failed create or convert left no file behind.

usage: fault_inject.py FAULT_IMG [--only NAME] [--keep]
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

# Every N up to CAP is tried; beyond it a seeded random sample of SAMPLE more (metadata preallocation
# with 512-byte clusters, commit and convert -c reach 140-240 operations; each N costs a run, a
# qemu-img check and a qemu-img convert, and the test must stay within a few minutes on 2 cores).
CAP = 100
SAMPLE = 30
SEED = 20261207
SIZE = 2 << 20
ERRORS = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def must(args, cwd=None):
    r = run(args, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def qemu_io(path, *commands):
    args = ["qemu-io", "-f", "qcow2"]
    for c in commands:
        args += ["-c", c]
    must(args + [path])


def create(path, size=SIZE, opts="cluster_size=4096", backing=None):
    args = ["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts]
    if backing:
        args += ["-b", backing, "-F", "qcow2"]
    must(args + [path, str(size)])


def patch_refcount(path, cluster_index, value):
    """Sets one 16-bit refcount in the first refcount block (a leak or a corruption made on purpose)."""
    with open(path, "r+b") as f:
        header = f.read(104)
        cluster_bits = struct.unpack(">I", header[20:24])[0]
        table = struct.unpack(">Q", header[48:56])[0]
        f.seek(table)
        block = struct.unpack(">Q", f.read(8))[0]
        f.seek(block + 2 * cluster_index)
        f.write(struct.pack(">H", value))
        size = f.seek(0, 2)
        f.truncate(max(size, (cluster_index + 1) << cluster_bits))


def data_cluster(path):
    """The host cluster index of the first data cluster (guest offset 0)."""
    m = json.loads(must(["qemu-img", "map", "--output=json", path]).stdout)
    return next(e["offset"] for e in m if e["data"] and "offset" in e) // 4096


# --- the commands: setup(dir) makes the images; `args` is the command; `views` the images whose guest
# view must be old or new; `made` the file a create/convert makes.

def setup_plain(d, opts="cluster_size=4096", size=SIZE):
    create(f"{d}/img.qcow2", size, opts)
    qemu_io(f"{d}/img.qcow2", "write -P 0x11 0 512k", "write -P 0x22 1536k 64k")


def setup_snapshots(d):
    setup_plain(d)
    must(["qemu-img", "snapshot", "-c", "s1", f"{d}/img.qcow2"])
    qemu_io(f"{d}/img.qcow2", "write -P 0x33 256k 256k", "write -z 1536k 4k")


def setup_chain(d):
    create(f"{d}/base.qcow2")
    qemu_io(f"{d}/base.qcow2", "write -P 0x11 0 1M")
    create(f"{d}/img.qcow2", backing="base.qcow2")
    qemu_io(f"{d}/img.qcow2", "write -P 0x44 512k 768k", "write -z 1792k 64k")
    create(f"{d}/base2.qcow2")
    qemu_io(f"{d}/base2.qcow2", "write -P 0x55 256k 512k")


def setup_leaks(d, corrupt):
    setup_plain(d)
    size = os.path.getsize(f"{d}/img.qcow2")
    for i in range(3):
        patch_refcount(f"{d}/img.qcow2", size // 4096 + 2 + i, 1)
    if corrupt:
        patch_refcount(f"{d}/img.qcow2", data_cluster(f"{d}/img.qcow2"), 0)


def commands():
    cmds = []
    for mode in ("off", "metadata", "falloc", "full"):
        cmds.append((f"create-{mode}", lambda d: None,
                     ["create", "-q", "-f", "qcow2", "-o", f"cluster_size=4096,preallocation={mode}",
                      "new.qcow2", "2M"], [], "new.qcow2"))
    for mode in ("off", "metadata"):
        # 512-byte clusters: the L1 table (64 entries a cluster) must move to grow from 2 to 3 MiB.
        cmds.append((f"resize-{mode}", lambda d: setup_plain(d, "cluster_size=512"),
                     ["resize", "-q", f"--preallocation={mode}", "img.qcow2", "3M"], ["img.qcow2"], None))
    for mode in ("falloc", "full"):
        cmds.append((f"resize-{mode}", setup_plain,
                     ["resize", "-q", f"--preallocation={mode}", "img.qcow2", "5M"], ["img.qcow2"], None))
    cmds.append(("resize-shrink", setup_plain, ["resize", "-q", "--shrink", "img.qcow2", "1M"],
                 ["img.qcow2"], None))
    cmds.append(("snapshot-c", setup_snapshots, ["snapshot", "-c", "s2", "img.qcow2"], ["img.qcow2"], None))
    cmds.append(("snapshot-a", setup_snapshots, ["snapshot", "-a", "s1", "img.qcow2"], ["img.qcow2"], None))
    cmds.append(("snapshot-d", setup_snapshots, ["snapshot", "-d", "s1", "img.qcow2"], ["img.qcow2"], None))
    cmds.append(("commit", setup_chain, ["commit", "-q", "img.qcow2"], ["img.qcow2"], None))
    cmds.append(("rebase", setup_chain, ["rebase", "-q", "-b", "base2.qcow2", "-F", "qcow2", "img.qcow2"],
                 ["img.qcow2"], None))
    cmds.append(("rebase-u", setup_chain,
                 ["rebase", "-q", "-u", "-b", "base2.qcow2", "-F", "qcow2", "img.qcow2"], ["img.qcow2"], None))
    for mode, corrupt in (("leaks", False), ("all", True)):
        cmds.append((f"check-r-{mode}", lambda d, corrupt=corrupt: setup_leaks(d, corrupt),
                     ["check", "-q", "-r", mode, "img.qcow2"], ["img.qcow2"], None))
    cmds.append(("convert", setup_snapshots,
                 ["convert", "-O", "qcow2", "-o", "cluster_size=4096", "img.qcow2", "new.qcow2"], [],
                 "new.qcow2"))
    cmds.append(("convert-c", setup_snapshots,
                 ["convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", "img.qcow2", "new.qcow2"], [],
                 "new.qcow2"))
    # vmstor-img has no amend command (qemu-img amend): nothing to test there.
    return cmds


def view(d, name, snapshot=None):
    """(virtual size, hash of the guest data) of an image, or of one of its snapshots."""
    raw = f"{d}/{name}.{snapshot or 'active'}.raw"
    args = ["qemu-img", "convert", "-U", "-O", "raw"]
    if snapshot:
        args += ["-l", f"snapshot.name={snapshot}"]
    must(args + [f"{d}/{name}", raw])
    with open(raw, "rb") as f:
        data = f.read()
    os.unlink(raw)
    return len(data), hashlib.sha256(data).hexdigest()


def state(d, images):
    """What the guest sees in each image: its data and every internal snapshot's."""
    out = []
    for name in images:
        info = json.loads(must(["qemu-img", "info", "-U", "--output=json", f"{d}/{name}"]).stdout)
        snaps = sorted(s["name"] for s in info.get("snapshots", []))
        out.append((name, view(d, name), tuple((s, view(d, name, s)) for s in snaps)))
    return tuple(out)


def check(path, allow_corrupt=False):
    r = run(["qemu-img", "check", "-U", path])
    if r.returncode in (0, 3) or (allow_corrupt and r.returncode == 2):
        return None
    return f"qemu-img check {os.path.basename(path)}: exit {r.returncode}: " + \
        (r.stdout + r.stderr).strip().replace("\n", " | ")[:1200]


def counts(stderr):
    line = [x for x in stderr.splitlines() if x.startswith("fault_img:")][-1]
    return dict(kv.split("=", 1) for kv in line.split()[1:])


class Test:
    def __init__(self, driver, work):
        self.driver, self.work = driver, work
        self.lock = threading.Lock()
        self.failures = []
        self.points = 0

    def fail(self, text):
        with self.lock:
            self.failures.append(text)

    def prepare(self, name, setup, args, views, made):
        template = os.path.join(self.work, name, "template")
        os.makedirs(template)
        setup(template)
        before = state(template, views) if views else None
        files = sorted(os.listdir(template))
        probe = os.path.join(self.work, name, "count")
        shutil.copytree(template, probe)
        r = run([self.driver, "--"] + args, cwd=probe)
        if r.returncode != 0:
            raise RuntimeError(f"{name}: without a fault: exit {r.returncode}: {r.stderr.strip()}")
        n = int(counts(r.stderr)["any"])
        after = state(probe, views) if views else None
        for f in files + ([made] if made else []):
            if name.startswith("check-r-all") or not f.endswith(".qcow2"):
                continue
            problem = check(os.path.join(probe, f))
            if problem:
                raise RuntimeError(f"{name}: without a fault: {problem}")
        shutil.rmtree(probe)
        return template, before, after, n

    def point(self, name, args, views, made, template, before, after, n, err):
        d = os.path.join(self.work, name, f"{err}-{n}")
        shutil.copytree(template, d)
        r = run([self.driver, "--fail-op", "any", "--fail-at", str(n), "--errno", err, "--"] + args, cwd=d)
        where = f"{name} {' '.join(args)}: {err} at operation {n}"
        c = counts(r.stderr)
        if not c["injected"].startswith("any:"):
            return self.fail(f"{where}: never reached (the command ran {c['any']} operations)")
        if r.returncode == 0:
            return self.fail(f"{where}: the command succeeded although the operation failed")
        if ERRORS[err] not in r.stderr:
            return self.fail(f"{where}: exit {r.returncode} without naming the error: {r.stderr.strip()}")
        if made and os.path.exists(os.path.join(d, made)):
            return self.fail(f"{where}: the failed command left {made} behind "
                             f"({os.path.getsize(os.path.join(d, made))} bytes)")
        repair = name.startswith("check-r")
        for f in sorted(os.listdir(d)):
            if f.endswith(".qcow2"):
                problem = check(os.path.join(d, f), allow_corrupt=repair)
                if problem:
                    return self.fail(f"{where}: {problem}")
        if views:
            now = state(d, views)
            if now != before and now != after:
                return self.fail(f"{where}: the guest view is neither the old nor the new: "
                                 f"{describe(now, before, after)}")
        if repair:
            r = run(["qemu-img", "check", "-q", "-r", "all", os.path.join(d, "img.qcow2")])
            if r.returncode != 0:
                return self.fail(f"{where}: qemu-img check -r all could not repair it afterwards: "
                                 f"{r.stderr.strip()}")
        with self.lock:
            self.points += 1
        shutil.rmtree(d)


def describe(now, before, after):
    for (name, v, snaps), (_, v0, s0), (_, v1, s1) in zip(now, before, after):
        if v not in (v0, v1):
            return f"{name}: virtual size {v[0]} (old {v0[0]}, new {v1[0]}), data differs from both"
        if snaps not in (s0, s1):
            return f"{name}: snapshots {[s for s, _ in snaps]} (old {[s for s, _ in s0]}, " \
                   f"new {[s for s, _ in s1]}), or their data differs"
    return "a mix of old and new"


def points_for(n, rng):
    chosen = list(range(1, min(n, CAP) + 1))
    if n > CAP:
        chosen += sorted(rng.sample(range(CAP + 1, n + 1), min(SAMPLE, n - CAP)))
    return chosen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("driver")
    parser.add_argument("--only", help="run only the commands whose name starts with this")
    parser.add_argument("--keep", action="store_true")
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="vmstor-fault-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    test = Test(os.path.abspath(opts.driver), work)
    rng = random.Random(SEED)
    summary = []
    try:
        jobs = []
        for name, setup, args, views, made in commands():
            if opts.only and not name.startswith(opts.only):
                continue
            template, before, after, n = test.prepare(name, setup, args, views, made)
            chosen = points_for(n, rng)
            summary.append(f"{name} {n}" + (f" ({len(chosen)} tried)" if len(chosen) < n else ""))
            for err in ERRORS:
                jobs += [(name, args, views, made, template, before, after, k, err) for k in chosen]
        with ThreadPoolExecutor(max_workers=2) as pool:
            for f in [pool.submit(test.point, *job) for job in jobs]:
                f.result()
    finally:
        if not opts.keep and not test.failures:
            shutil.rmtree(work, ignore_errors=True)
    print(f"operations per command: {', '.join(summary)}")
    print(f"{test.points} injected failures survived ({len(ERRORS)} errors each)")
    shown = {}
    for f in test.failures:
        command = f.split(" ", 1)[0]
        shown[command] = shown.get(command, 0) + 1
        if shown[command] <= 4:
            print("FAIL " + f)
    for command, n in shown.items():
        print(f"{command}: {n} failed injections")
    if test.failures:
        print(f"{len(test.failures)} failures; work directory kept: {work}")
    return 1 if test.failures else 0


if __name__ == "__main__":
    sys.exit(main())
