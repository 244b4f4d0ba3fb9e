#!/usr/bin/python3
"""Crash safety of the qcow2 engine: crash_driver runs a seeded workload (guest writes and flushes,
snapshot create/delete, resize, commit, convert) on an overlay backed by a base image, and is stopped at
hundreds of points: before the N-th write or sync (`exit`), there with a random part of the unsynced
writes dropped (`powerloss`), by an EIO at the N-th write or sync after which the engine closes the image
(`close`), and by SIGKILL after a random delay. After each, qemu-img check must find no corruption
(leaks are repaired with -r leaks and must then be gone) and the guest data, snapshots and convert targets
acknowledged before the crash must read back as written (qemu-img convert to raw).

Not checked: a convert target whose convert did not return (like qemu-img convert's, it is built without
ordering syncs and is not an image until convert returns). Allowed, counted and repaired: OFLAG_COPIED
mismatches left by a crash inside snapshot create/delete (see check_image).

usage: run_crash.py CRASH_DRIVER [--seeds N] [--seed S --point KIND:N]   (a failure prints its reproducer)
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_model import Model, check_exact  # noqa: E402

BASE_SEED = 20261122
STEPS = 45
SIZE = 8 << 20
# The base image's initial guest data, written by qemu-io.
INITIAL = [(0, 3 << 20, 0x11), (5 << 20, 1 << 20, 0x22)]
# Image layouts the seeds cycle through.
LAYOUTS = ["cluster_size=65536", "cluster_size=4096", "cluster_size=65536,extended_l2=on",
           "cluster_size=16384,refcount_bits=8"]
# Layouts whose base carries persistent bitmaps (enabled and disabled), which commit writes into and every
# clean close stores. Not the disk: qemu-img 7.2's check -r (used here to repair leaks) drops the snapshot
# table of an image that has both bitmaps and snapshots (seen with bitmaps QEMU itself stored).
WITH_BITMAPS = {"cluster_size=65536", "cluster_size=16384,refcount_bits=8"}


def run(args, **kw):
    return subprocess.run(args, capture_output=True, **kw)


def must(args):
    r = run(args)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.decode().strip()}")
    return r


def make_template(directory, seed):
    os.makedirs(directory)
    layout = LAYOUTS[seed % len(LAYOUTS)]
    base, disk = os.path.join(directory, "base.qcow2"), os.path.join(directory, "disk.qcow2")
    must(["qemu-img", "create", "-q", "-f", "qcow2", "-o", layout, base, str(SIZE)])
    io = ["qemu-io", "-f", "qcow2"]
    for off, length, value in INITIAL:
        io += ["-c", f"write -P {value:#x} {off} {length}"]
    must(io + [base])
    must(["qemu-img", "create", "-q", "-f", "qcow2", "-o", layout, "-b", "base.qcow2", "-F", "qcow2",
          disk, str(SIZE)])
    if layout in WITH_BITMAPS:
        must(["qemu-img", "bitmap", "--add", "-g", "16384", base, "b0"])
        must(["qemu-img", "bitmap", "--add", "--disable", base, "d0"])


def bitmaps_consistent(directory):
    """After a run that ended cleanly no bitmap is left in use, and qemu-img can copy them."""
    for name in ("base.qcow2",):
        path = os.path.join(directory, name)
        info = json.loads(must(["qemu-img", "info", "-f", "qcow2", "--output=json", path]).stdout)
        for bitmap in info.get("format-specific", {}).get("data", {}).get("bitmaps", []):
            if "in-use" in bitmap["flags"]:
                return f"{name}: bitmap {bitmap['name']} left in use after a clean close"
        r = run(["qemu-img", "convert", "--bitmaps", "-f", "qcow2", "-O", "qcow2", path, path + ".copy"])
        if r.returncode != 0:
            return f"qemu-img convert --bitmaps {name}: {r.stderr.decode().strip()}"
        os.unlink(path + ".copy")
    return None


class Stats:
    """Counters shared by the worker threads."""

    def __init__(self):
        self.points = {}
        self.leaky_images = 0
        self.leaked_clusters = 0
        self.copied_flag_images = 0
        self.lock = threading.Lock()

    def add(self, counter, n=1):
        with self.lock:
            if counter in ("leaky_images", "leaked_clusters", "copied_flag_images"):
                setattr(self, counter, getattr(self, counter) + n)
            else:
                self.points[counter] = self.points.get(counter, 0) + n


def copied_flags_only(check):
    """True when every error qemu-img check printed is an OFLAG_COPIED mismatch."""
    errors = [line for line in check.stderr.decode().splitlines() if line.startswith("ERROR")]
    return errors != [] and all(line.startswith("ERROR OFLAG_COPIED") for line in errors)


def check_image(path, stats, clean=False, in_snapshot_op=False):
    """qemu-img check: no corruption; leaks repaired by -r leaks, after which check is clean.

    One exception, inherent to the format and shared with QEMU: a crash while a snapshot is created or
    deleted, between the refcount update and the L2/L1 update, leaves refcounts that disagree with
    OFLAG_COPIED flags (refcount 2 with the flag set, as QEMU's qcow2_snapshot_create would). Such a
    finding must be OFLAG_COPIED mismatches only, and qemu-img check -r all must make the image clean."""
    name = os.path.basename(path)
    r = run(["qemu-img", "check", "-f", "qcow2", "--output=json", path])
    if r.returncode == 2 and in_snapshot_op and copied_flags_only(r):
        stats.add("copied_flag_images")
        fixed = run(["qemu-img", "check", "-q", "-f", "qcow2", "-r", "all", path])
        again = run(["qemu-img", "check", "-f", "qcow2", path])
        if fixed.returncode != 0 or again.returncode != 0:
            return f"{name}: OFLAG_COPIED mismatches that -r all did not repair: {again.stdout.decode()}"
        return None
    if r.returncode not in (0, 3):
        errors = [line for line in r.stderr.decode().splitlines() if not line.startswith("Leaked")]
        return f"qemu-img check {name}: exit {r.returncode}: " + "\n".join(errors)[:2000]
    leaks = json.loads(r.stdout).get("leaks", 0)
    if leaks == 0:
        return None
    if clean:
        return f"{os.path.basename(path)}: {leaks} leaked clusters in an image that was completed"
    stats.add("leaky_images")
    stats.add("leaked_clusters", leaks)
    r = run(["qemu-img", "check", "-q", "-f", "qcow2", "-r", "leaks", path])
    if r.returncode != 0:
        return f"qemu-img check -r leaks {os.path.basename(path)}: exit {r.returncode}: {r.stderr.decode()}"
    r = run(["qemu-img", "check", "-f", "qcow2", path])
    if r.returncode != 0:
        return f"{os.path.basename(path)} after -r leaks: exit {r.returncode}: {r.stdout.decode()}"
    return None


def guest_view(directory, image, snapshot=None):
    out = os.path.join(directory, "view.raw")
    args = ["qemu-img", "convert", "-f", "qcow2", "-O", "raw"]
    if snapshot:
        args += ["-l", f"snapshot.name={snapshot}"]
    must(args + [os.path.join(directory, image), out])
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data


def verify(directory, model, stats):
    """Everything a crash may not break; returns the first problem or None."""
    disk = os.path.join(directory, "disk.qcow2")
    in_snapshot_op = (model.issued or "").startswith(("SC ", "SD "))
    problem = check_image(disk, stats, in_snapshot_op=in_snapshot_op)
    if not problem and model.committed:  # else the base was never opened for writing
        problem = check_image(os.path.join(directory, "base.qcow2"), stats)
    if problem:
        return problem
    problem = model.check_guest(guest_view(directory, "disk.qcow2"))
    if problem:
        return "guest data: " + problem
    if not model.snapshots and not model.maybe_snapshots:
        return verify_converts(directory, model, stats)
    info = json.loads(must(["qemu-img", "info", "-f", "qcow2", "--output=json", disk]).stdout)
    names = {s["name"] for s in info.get("snapshots", [])}
    missing = set(model.snapshots) - names
    unexpected = names - set(model.snapshots) - model.maybe_snapshots
    if missing or unexpected:
        return f"snapshots {sorted(names)}: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
    exact = [n for n, (_, _, committed) in model.snapshots.items() if not committed]
    if exact:
        size, contents, _ = model.snapshots[exact[-1]]
        # qemu-img convert -l shows a snapshot at the image's current size (QEMU's load_tmp keeps it).
        view = guest_view(directory, "disk.qcow2", exact[-1])
        problem = check_exact(view[:size], size, contents) if len(view) >= size else \
            f"virtual size {len(view)}, smaller than the snapshot's {size}"
        if problem:
            return f"snapshot {exact[-1]}: {problem}"
    return verify_converts(directory, model, stats)


def verify_converts(directory, model, stats):
    """The last completed convert target is clean and holds the guest data of its time."""
    if not model.converts:
        return None
    name, (size, contents) = list(model.converts.items())[-1]
    problem = check_image(os.path.join(directory, name), stats, clean=True) or \
        check_exact(guest_view(directory, name), size, contents)
    return f"convert target {name}: {problem}" if problem else None


def run_point(driver, workdir, seed, point, stats):
    """One crash point ("exit:N", "powerloss:N", "close:N", "syncexit:N", "syncclose:N", ...,
    "kill:SECONDS", "none"); returns (problem or None, model)."""
    directory = os.path.join(workdir, f"{seed}-{point.replace(':', '-')}")
    shutil.copytree(os.path.join(workdir, f"template-{seed}"), directory)
    args = [driver, directory, str(seed), str(STEPS)]
    kind, _, arg = point.partition(":")
    if kind in ("exit", "powerloss", "close"):
        args += ["--fail", "write", arg, "--after", kind]
    elif kind.startswith("sync"):
        args += ["--fail", "sync", arg, "--after", kind[4:]]
    start = time.monotonic()
    if kind == "kill":
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(float(arg))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        killed = p.returncode == -signal.SIGKILL
    else:
        r = run(args)
        out, err, killed = r.stdout, r.stderr, False
        if r.returncode != 0:
            return f"crash_driver exit {r.returncode}: {err.decode().strip()}", None, 0
    elapsed = time.monotonic() - start
    model = Model(SIZE, INITIAL)
    for line in out.decode().splitlines():
        model.feed(line)
    if kind == "none" and model.count is None:
        return "the workload did not finish: " + (model.error or err.decode()), model, elapsed
    if kind in ("exit", "powerloss", "syncexit", "syncpowerloss") and not model.crashed:
        return "the fault point was never reached", model, elapsed
    if kind in ("close", "syncclose") and model.error is None and model.count is None:
        return "the driver neither failed nor finished", model, elapsed
    problem = verify(directory, model, stats)
    if problem is None and kind == "none":
        problem = bitmaps_consistent(directory)
    if problem is None:
        if kind != "none" and (kind != "kill" or killed):
            stats.add(kind)
        shutil.rmtree(directory)
    return problem, model, elapsed


def points_for(seed, writes, syncs, duration):
    rng = random.Random(seed)
    points = [f"exit:{n}" for n in rng.sample(range(1, writes + 1), min(8, writes))]
    points += [f"powerloss:{n}" for n in rng.sample(range(1, writes + 1), min(8, writes))]
    points += [f"close:{n}" for n in rng.sample(range(1, writes + 1), min(5, writes))]
    points += [f"syncpowerloss:{n}" for n in rng.sample(range(1, syncs + 1), min(5, syncs))]
    points += [f"syncclose:{n}" for n in rng.sample(range(1, syncs + 1), min(3, syncs))]
    points += [f"kill:{rng.uniform(0, duration * 0.9):.4f}" for _ in range(8)]
    return points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("driver")
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--seed", type=int, help="run one seed only (with --point: one point)")
    parser.add_argument("--point")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = parser.parse_args()
    seeds = [opts.seed] if opts.seed is not None else [BASE_SEED + i for i in range(opts.seeds)]
    # Memory-backed when possible: syncs cost nothing there, and what a crash leaves is decided by the
    # order of writes and syncs, which the driver models itself (powerloss), not by the device.
    workdir = tempfile.mkdtemp(prefix="vmstor-crash-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    stats = Stats()
    failures = []
    started = time.monotonic()

    def report(seed, point, problem, model):
        last = model.issued if model else None
        failures.append(f"seed {seed} point {point}: {problem} (operation in progress: {last})\n"
                        f"  reproduce: run_crash.py {opts.driver} --seed {seed} --point {point} --keep")

    def one_seed(seed):
        make_template(os.path.join(workdir, f"template-{seed}"), seed)
        problem, model, duration = run_point(opts.driver, workdir, seed, "none", stats)
        if problem:
            return report(seed, "none", problem, model)
        writes, syncs = model.count
        points = [opts.point] if opts.point else points_for(seed, writes, syncs, duration)
        for point in points:
            problem, model, _ = run_point(opts.driver, workdir, seed, point, stats)
            if problem:
                report(seed, point, problem, model)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for f in [pool.submit(one_seed, s) for s in seeds]:
                f.result()
    finally:
        if not opts.keep and not failures:
            shutil.rmtree(workdir, ignore_errors=True)
    total = sum(stats.points.values())
    detail = ", ".join(f"{n} {k}" for k, n in sorted(stats.points.items()))
    print(f"crash points survived: {total} ({detail}) over {len(seeds)} seeds; "
          f"{stats.leaky_images} images had leaks ({stats.leaked_clusters} clusters), all repaired by "
          f"qemu-img check -r leaks; {stats.copied_flag_images} crashes inside a snapshot create/delete "
          f"left OFLAG_COPIED mismatches, all repaired by -r all; {time.monotonic() - started:.1f} s")
    for f in failures:
        print("FAIL " + f)
    if failures:
        print(f"work directory kept: {workdir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
