#!/usr/bin/python3
"""Snapshots and commit: vmstor-img against qemu-img on identical copies, in one run.

usage: snapshot_bench.py [--vmstor-img PATH] [--quick] [--dir DIR] [--keep] [--runs N] [--warm-gib GiB]
                         [--rest SECONDS]

Operations (issue 4; goal for each: no slower than qemu-img, i.e. speed >= 1.0x):
  snapshot -c, -a and -d on a 64 GiB image made with preallocation=metadata (every L2 table and data
      cluster allocated, so a snapshot touches 1 Mi refcounts), with 1 GiB written between -c and -a
  commit of an overlay holding 1 GiB of data into a 16 GiB base holding 4 GiB
Both tools run the same operation on their own copy of the same files. vmstor-img's operations are the
engine's, the code behind Volume.CreateSnapshot, Snapshot.Revert, Snapshot.Delete and Volume.Commit.
--quick divides every size by 16.

Every timed command starts from the same state as in qcow2_bench.py (`sync`, then --warm-gib of memory
touched and freed). The whole sequence runs --runs times on fresh copies, the tools' order turning round
on every run so that neither always goes first; the table shows each tool's median run.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import qcow2_bench
from qcow2_bench import (GiB, MiB, add_settling_options, apply_settling_options, machine_line, measure,
                         median_result, settle)

OPERATIONS = ("snapshot -c", "snapshot -a", "snapshot -d", "commit")


def run(*args, cwd=None):
    subprocess.run(args, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def write_pattern(path, pattern, offset, length):
    """Guest data written through QEMU's own driver, in 256 MiB requests."""
    step = 256 * MiB
    commands = []
    for at in range(offset, offset + length, step):
        commands += ["-c", f"write -P {pattern} {at} {min(step, offset + length - at)}"]
    run("qemu-io", "-f", "qcow2", *commands, path)


def copies(work, name, tools):
    """The file `name` in `work`, copied once per tool into work/<tool>/ (sparse)."""
    paths = {}
    for tool in tools:
        os.makedirs(os.path.join(work, tool), exist_ok=True)
        paths[tool] = os.path.join(work, tool, name)
        run("cp", "--sparse=always", os.path.join(work, name), paths[tool])
    return paths


def timed(results, operation, tool, args):
    settle()
    results.setdefault((operation, tool), []).append(measure(args))


def bench_snapshots(results, tools, order, work, scale):
    """One run of snapshot -c, -a and -d, each tool on its own copy, in `order`."""
    base = os.path.join(work, "snap.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", base, str(64 * GiB // scale))
    images = copies(work, "snap.qcow2", tools)
    os.unlink(base)
    for tool in order:
        timed(results, "snapshot -c", tool, [tools[tool], "snapshot", "-c", "s1", images[tool]])
    for tool in order:
        write_pattern(images[tool], "0x5a", 0, GiB // scale)  # copy-on-write of 1 GiB after the snapshot
    for tool in order:
        timed(results, "snapshot -a", tool, [tools[tool], "snapshot", "-a", "s1", images[tool]])
    for tool in order:
        timed(results, "snapshot -d", tool, [tools[tool], "snapshot", "-d", "s1", images[tool]])
    same = subprocess.run(["qemu-img", "compare", "-q", images["qemu"], images["vmstor"]])
    if same.returncode != 0:
        raise SystemExit("the two images differ after the snapshot operations")
    for path in images.values():
        os.unlink(path)


def make_commit_inputs(work, scale):
    """A 16 GiB base holding 4 GiB and an overlay holding 1 GiB, half of it over the base's data."""
    base = os.path.join(work, "base.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", base, str(16 * GiB // scale))
    write_pattern(base, "0x11", 0, 4 * GiB // scale)
    overlay = os.path.join(work, "top.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", overlay, cwd=work)
    write_pattern(overlay, "0x22", 2 * GiB // scale, GiB // scale)


def bench_commit(results, tools, order, work):
    """One run of commit, each tool on its own copy of the inputs, in `order`."""
    bases = copies(work, "base.qcow2", tools)
    tops = copies(work, "top.qcow2", tools)
    for tool in order:
        timed(results, "commit", tool, [tools[tool], "commit", "-f", "qcow2", tops[tool]])
    same = subprocess.run(["qemu-img", "compare", "-q", bases["qemu"], bases["vmstor"]])
    if same.returncode != 0:
        raise SystemExit("the two bases differ after commit")
    for path in list(bases.values()) + list(tops.values()):
        os.unlink(path)


def render(results):
    def cell(result, cpu=False):
        if result.error:
            return "n/a"
        value = result.cpu_seconds if cpu else result.seconds
        return "" if value is None else f"{value:.2f}"

    rows = [["operation", "qemu-img s", "vmstor-img s", "speed vs qemu-img", "qemu-img CPU s", "vmstor-img CPU s",
             "goal", "met"]]
    notes = []
    for operation in OPERATIONS:
        qemu, vmstor = median_result(results[(operation, "qemu")]), median_result(results[(operation, "vmstor")])
        speed = None if qemu.error or vmstor.error or not vmstor.seconds else qemu.seconds / vmstor.seconds
        rows.append([operation, cell(qemu), cell(vmstor), "n/a" if speed is None else f"{speed:.2f}x",
                     cell(qemu, True), cell(vmstor, True), ">= 1.0x",
                     "?" if speed is None else ("yes" if speed >= 1.0 else "no")])
        for tool, result in (("qemu-img", qemu), ("vmstor-img", vmstor)):
            if result.error:
                notes.append(f"{operation}: {tool} failed: {result.error}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + notes)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vmstor-img", default=os.environ.get("VMSTOR_IMG", "vmstor-img"),
                        help="the vmstor-img binary (default: $VMSTOR_IMG or vmstor-img on PATH)")
    parser.add_argument("--quick", action="store_true", help="every size divided by 16")
    parser.add_argument("--dir", help="scratch directory (default: a new one under /var/tmp, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    add_settling_options(parser, "runs of the whole sequence on fresh copies, in turning order; the median is "
                                 "shown (default 3)")
    args = parser.parse_args()
    apply_settling_options(args)
    runs = qcow2_bench.RUNS

    scale = 16 if args.quick else 1
    tools = {"qemu": "qemu-img", "vmstor": shutil.which(args.vmstor_img) or args.vmstor_img}
    work = args.dir or tempfile.mkdtemp(prefix="vmstor-bench-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    results = {}
    try:
        make_commit_inputs(work, scale)
        for index in range(runs):
            order = list(tools)[index % 2:] + list(tools)[:index % 2]
            print(f"run {index + 1} of {runs}: {', '.join(order)} first", file=sys.stderr)
            bench_snapshots(results, tools, order, work, scale)
            bench_commit(results, tools, order, work)
    finally:
        if not args.dir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(machine_line() + (" (--quick: sizes / 16)" if args.quick else ""))
    print(f"command: {' '.join(sys.argv)}")
    print(f"median of {runs} runs, the tools' order turning round; {args.warm_gib:g} GiB of memory warmed and "
          f"{args.rest:g} s of rest before every timed command")
    print("speed = qemu-img time / vmstor-img time (above 1: vmstor-img is faster)\n")
    print(render(results))


if __name__ == "__main__":
    main()
