#!/usr/bin/python3
"""vmstor-img against qemu-img on the same files: time, speed ratio and peak memory.

usage: qcow2_bench.py [--vmstor-img PATH] [--size GiB] [--quick] [--dir DIR] [--keep] [--runs N]
                      [--warm-gib GiB] [--rest SECONDS]

Every timed command starts from the same state (see settle()); converts, check, info and map run
--runs times with the tools' order turning round, and the table shows each tool's median run.

Operations (the issue's speed goals in brackets):
  convert raw->qcow2 and qcow2->raw of an image half filled with random, text-like and zero data,
      beside `cp --sparse=always` of the same raw file        [>= 1.0x qemu-img, >= 0.8x cp]
  convert -c with zstd and zlib, against qemu-img convert -c at its best -m (1, 2, 4, 8; then -W)
                                                               [>= 1.5x qemu-img]
  check of a preallocation=metadata image (1 TiB)              [<= 0.5x qemu-img's time]
  info and map of an image with 50 % of its clusters allocated at random (64 GiB)   [not slower]
Peak memory is each command's maximum resident set (GNU time's %M); goal: no more than qemu-img.
CPU seconds (user + system) are printed too: on a busy machine they vary less than wall time.
A vmstor-img subcommand that fails is reported as "n/a (vmstor-img: <its error>)" and the run goes on.
"""
import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

GiB, MiB, KiB = 1 << 30, 1 << 20, 1 << 10


class Result:
    def __init__(self, seconds, peak_kib, error=None, cpu_seconds=None):
        self.seconds, self.peak_kib, self.error, self.cpu_seconds = seconds, peak_kib, error, cpu_seconds


GNU_TIME = "/usr/bin/time"


def machine_line():
    """The date, the CPU, the kernel and qemu-img's version: the line every benchmark table starts with."""
    qemu_version = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return (f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} x {cpu}, {platform.system()} "
            f"{platform.release()}, {qemu_version}")


def measure(args, stdout=subprocess.DEVNULL):
    """Runs one command; returns its wall time and peak RSS, or the first line of its error.

    Peak RSS comes from GNU time's %M: a child forked straight from this Python process would
    report Python's own resident set as its peak (Linux keeps the high-water mark across exec)."""
    report = tempfile.NamedTemporaryFile(prefix="vmstor-bench-rss-", mode="r")
    wrapper = [GNU_TIME, "-f", "%M %U %S", "-o", report.name] if os.path.exists(GNU_TIME) else []
    started = time.monotonic()
    try:
        child = subprocess.run(wrapper + args, stdout=stdout, stderr=subprocess.PIPE)
    except OSError as e:
        return Result(None, None, str(e))
    seconds = time.monotonic() - started
    fields = report.read().split()[-3:]  # a failed command's report starts with an extra line
    peak = cpu = None
    if wrapper and len(fields) == 3 and fields[0].isdigit():
        peak, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
    if child.returncode != 0:
        errors = [ln for ln in child.stderr.decode(errors="replace").splitlines() if ln.strip()]
        return Result(seconds, peak, errors[0] if errors else f"exit {child.returncode}")
    return Result(seconds, peak, cpu_seconds=cpu)


def drop_file(path):
    if os.path.exists(path):
        os.unlink(path)


WARM_BYTES = 0  # set from --warm-gib
REST_SECONDS = 0.0  # set from --rest


def settle():
    """Puts the machine in the same state before every timed command: dirty data written out, and (with
    --warm-gib) that much memory touched and freed again. On a VM whose freed memory goes back to the host
    (free page reporting), whichever tool runs first after a large free gets memory the host has already
    backed, and a later one pays for the host to fault it in again: measured here, 0.5 s against 2.3 s for
    the same convert depending only on the order. Warming makes every run find backed memory."""
    subprocess.run(["sync"])
    time.sleep(REST_SECONDS)  # with --warm-gib 0: time for freed memory to go back to the host
    if WARM_BYTES:
        warm = "/dev/shm/vmstor-bench-warm"
        with open(warm, "wb") as f:
            block = bytes(MiB)
            for _ in range(WARM_BYTES // MiB):
                f.write(block)
        os.unlink(warm)


def add_settling_options(parser, runs_help):
    """--runs, --warm-gib and --rest, shared with snapshot_bench.py."""
    parser.add_argument("--runs", type=int, default=3, help=runs_help)
    parser.add_argument("--warm-gib", type=float, default=4,
                        help="GiB of memory touched and freed before every timed command (default 4; 0: none)")
    parser.add_argument("--rest", type=float, default=0,
                        help="seconds of rest after the sync before every timed command (default 0)")


def apply_settling_options(args):
    global RUNS, WARM_BYTES, REST_SECONDS
    RUNS, WARM_BYTES, REST_SECONDS = max(1, args.runs), int(args.warm_gib * GiB), max(0.0, args.rest)


def median_result(results):
    """The run of median time (its memory and CPU with it); a failed run makes the whole result failed."""
    failed = [r for r in results if r.error is not None]
    if failed:
        return failed[0]
    return sorted(results, key=lambda r: r.seconds)[len(results) // 2]


def alternating(commands, runs, before=None):
    """Runs each of `commands` (name -> argv) `runs` times, the order turning round on every pass so that
    none always goes first; `before()` runs ahead of each. Returns name -> the median run."""
    names = list(commands)
    results = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            if before:
                before()
            settle()
            results[name].append(measure(commands[name]))
    return {name: median_result(r) for name, r in results.items()}


# --- input files ------------------------------------------------------------------------------
def make_mixed_raw(path, size):
    """Half of the chunks hold data (random, text-like, random+text, written zeroes); half are holes."""
    rng = random.Random(42)
    words = [b"qcow2 ", b"cluster ", b"refcount ", b"vmstor ", b"snapshot ", b"backing\n", b"0x7f3a ", b"ERROR "]
    chunk = 1 * MiB
    text = b"".join(rng.choice(words) for _ in range(chunk // 4))[:chunk]
    with open(path, "wb") as f:
        f.truncate(size)
        for index in range(size // chunk):
            kind = index % 8
            if kind >= 4:
                continue  # hole
            f.seek(index * chunk)
            if kind == 0:
                f.write(rng.randbytes(chunk))
            elif kind == 1:
                shift = index % 1000  # vary the text so that no two chunks are equal
                f.write(text[shift:] + text[:shift])
            elif kind == 2:
                f.write(rng.randbytes(chunk // 2) + text[: chunk // 2])
            else:
                f.write(bytes(chunk))


def make_half_allocated(path, size, cluster=64 * KiB):
    """preallocation=metadata, then every cluster discarded with probability 1/2 (through qemu-io)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"preallocation=metadata,cluster_size={cluster}",
                    path, str(size)], check=True)
    rng = random.Random(7)
    commands = "".join(f"discard {i * cluster} {cluster}\n" for i in range(size // cluster) if rng.random() < 0.5)
    subprocess.run(["qemu-io", "-f", "qcow2", path], input=commands.encode(), stdout=subprocess.DEVNULL, check=True)


# --- the table --------------------------------------------------------------------------------
class Goal:
    """The issue's goal for one row: minimum speed against qemu-img (and cp), memory at most qemu-img's."""

    def __init__(self, min_speed, min_vs_cp=None):
        self.min_speed, self.min_vs_cp = min_speed, min_vs_cp

    def text(self):
        text = f">={self.min_speed:g}x qemu" + (f", >={self.min_vs_cp:g}x cp" if self.min_vs_cp else "")
        return text + ", mem <=1"

    def met(self, speed, vs_cp, memory):
        if speed is None or memory is None:
            return "n/a"
        ok = speed >= self.min_speed and memory <= 1.0
        if self.min_vs_cp is not None:
            ok = ok and vs_cp is not None and vs_cp >= self.min_vs_cp
        return "yes" if ok else "no"


class Table:
    def __init__(self):
        self.rows = []
        self.notes = []

    def note(self, text):
        self.notes.append(text)

    def add(self, operation, qemu, vmstor, baseline, goal):
        self.rows.append((operation, qemu, vmstor, baseline, goal))
        print(f"  done: {operation}", file=sys.stderr)

    @staticmethod
    def seconds(result):
        return f"{result.seconds:.2f}" if result and result.error is None else "n/a"

    @staticmethod
    def cpu(result):
        ok = result and result.error is None and result.cpu_seconds is not None
        return f"{result.cpu_seconds:.2f}" if ok else "n/a"

    @staticmethod
    def peak(result):
        return f"{result.peak_kib / 1024:.0f}" if result and result.error is None and result.peak_kib else "n/a"

    @staticmethod
    def ratio(value, suffix=""):
        return f"{value:.2f}{suffix}" if value is not None else "n/a"

    def render(self):
        header = ["operation", "qemu-img s", "vmstor-img s", "speed vs qemu-img", "qemu-img CPU s",
                  "vmstor-img CPU s", "cp --sparse s",
                  "speed vs cp", "qemu-img MiB", "vmstor-img MiB", "memory ratio", "goal", "met"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        notes = []
        for operation, qemu, vmstor, baseline, goal in self.rows:
            ok = vmstor.error is None and qemu.error is None and vmstor.seconds
            speed = qemu.seconds / vmstor.seconds if ok else None
            vs_cp = baseline.seconds / vmstor.seconds if ok and baseline and baseline.error is None else None
            memory = vmstor.peak_kib / qemu.peak_kib if ok and qemu.peak_kib and vmstor.peak_kib else None
            lines.append("| " + " | ".join([
                operation, self.seconds(qemu), self.seconds(vmstor), self.ratio(speed, "x"),
                self.cpu(qemu), self.cpu(vmstor),
                self.seconds(baseline) if baseline else "", self.ratio(vs_cp, "x") if baseline else "",
                self.peak(qemu), self.peak(vmstor), self.ratio(memory), goal.text(), goal.met(speed, vs_cp, memory),
            ]) + " |")
            if vmstor.error is not None:
                notes.append(f"{operation}: n/a (vmstor-img: {vmstor.error})")
            if qemu.error is not None:
                notes.append(f"{operation}: n/a (qemu-img: {qemu.error})")
        return "\n".join(lines + [""] + self.notes + notes)


# --- the benchmarks ---------------------------------------------------------------------------
RUNS = 3  # set from --runs


def bench_convert(table, tools, work, size):
    raw = os.path.join(work, "mixed.raw")
    make_mixed_raw(raw, size)
    out = {name: os.path.join(work, f"out-{name}") for name in ("qemu", "vmstor", "cp")}
    label = f"{size // GiB} GiB" if size >= GiB else f"{size // MiB} MiB"

    def drop_outputs():
        for path in out.values():
            drop_file(path)  # no tool's output stays in the page cache while another one runs

    def both(args):
        return alternating({"cp": ["cp", "--sparse=always", raw, out["cp"]],
                            "qemu": [tools["qemu"], "convert", *args, out["qemu"]],
                            "vmstor": [tools["vmstor"], "convert", *args, out["vmstor"]]}, RUNS, drop_outputs)

    r = both(["-f", "raw", "-O", "qcow2", raw])
    table.add(f"convert raw->qcow2, {label} half full", r["qemu"], r["vmstor"], r["cp"], Goal(1.0, 0.8))
    source = os.path.join(work, "mixed.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, source], check=True)
    r = both(["-f", "qcow2", "-O", "raw", source])  # the same qcow2 file is the input of both tools
    table.add(f"convert qcow2->raw, {label} half full", r["qemu"], r["vmstor"], r["cp"], Goal(1.0, 0.8))
    drop_file(source)
    drop_outputs()
    return raw


def bench_compress(table, tools, work, raw, quick):
    """qemu-img at its best -m (and -W) against vmstor-img at its defaults; both output sizes are noted,
    so that a reader sees that the faster output is not a larger one."""
    target = os.path.join(work, "compressed.qcow2")

    def qemu_run(ctype, args):
        drop_file(target)
        settle()
        result = measure([tools["qemu"], "convert", "-c", *args, "-f", "raw", "-O", "qcow2",
                          "-o", f"compression_type={ctype}", raw, target])
        return result, (os.path.getsize(target) if result.error is None else None)

    for ctype in ("zstd", "zlib"):
        tries = [["-m", str(m)] for m in ((1, 2) if quick else (1, 2, 4, 8))]
        best, best_args, best_size = None, None, None

        def consider(args):
            nonlocal best, best_args, best_size
            result, size = qemu_run(ctype, args)
            if result.error is None and (best is None or result.seconds < best.seconds):
                best, best_args, best_size = result, args, size

        for args in tries:
            consider(args)
        if best_args is not None:
            consider(best_args + ["-W"])  # out-of-order writes, with the best -m
        if best is None:
            best = Result(None, None, "every -m failed")
        drop_file(target)
        settle()
        vmstor = measure([tools["vmstor"], "convert", "-c", "-f", "raw", "-O", "qcow2",
                          "-o", f"compression_type={ctype}", raw, target])
        vmstor_size = os.path.getsize(target) if vmstor.error is None else None
        drop_file(target)
        operation = f"convert -c {ctype} (qemu-img {' '.join(best_args or [])})"
        table.add(operation, best, vmstor, None, Goal(1.5))
        if best_size and vmstor_size:
            table.note(f"{operation}: output {best_size / MiB:.1f} MiB (qemu-img), {vmstor_size / MiB:.1f} MiB "
                       f"(vmstor-img), {vmstor_size / best_size:.4f} of qemu-img's")


def bench_check(table, tools, work, size):
    image = os.path.join(work, "prealloc.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", image, str(size)],
                   check=True)
    r = alternating({"qemu": [tools["qemu"], "check", image], "vmstor": [tools["vmstor"], "check", image]}, RUNS)
    qemu, vmstor = r["qemu"], r["vmstor"]
    table.add(f"check, {size // GiB} GiB preallocation=metadata", qemu, vmstor, None, Goal(2.0))
    drop_file(image)


def bench_info_map(table, tools, work, size):
    image = os.path.join(work, "half-allocated.qcow2")
    make_half_allocated(image, size)
    for command in (["info", "--output=json"], ["map", "--output=json"]):
        r = alternating({"qemu": [tools["qemu"], *command, image], "vmstor": [tools["vmstor"], *command, image]},
                        RUNS)
        qemu, vmstor = r["qemu"], r["vmstor"]
        table.add(f"{command[0]}, {size // GiB} GiB 50 % allocated", qemu, vmstor, None, Goal(1.0))
    drop_file(image)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vmstor-img", default=os.environ.get("VMSTOR_IMG", "vmstor-img"),
                        help="the vmstor-img binary (default: $VMSTOR_IMG or vmstor-img on PATH)")
    parser.add_argument("--size", type=float, default=None,
                        help="GiB of the convert image (default 4; the check and map images scale with it)")
    parser.add_argument("--quick", action="store_true", help="small images and fewer -m tries (about a minute)")
    parser.add_argument("--dir", help="scratch directory (default: a new one under /var/tmp, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    add_settling_options(parser, "runs of each command but compression's, in turning order; the median is shown "
                                 "(default 3)")
    args = parser.parse_args()
    apply_settling_options(args)

    size_gib = args.size if args.size is not None else (0.25 if args.quick else 4)
    convert_size = int(size_gib * GiB) // MiB * MiB
    scale = convert_size / (4 * GiB)
    check_size = max(GiB, int(1024 * GiB * scale) // GiB * GiB)
    map_size = max(GiB, int(64 * GiB * scale) // GiB * GiB)
    tools = {"qemu": "qemu-img", "vmstor": shutil.which(args.vmstor_img) or args.vmstor_img}

    work = args.dir or tempfile.mkdtemp(prefix="vmstor-bench-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    table = Table()
    try:
        raw = bench_convert(table, tools, work, convert_size)
        bench_compress(table, tools, work, raw, args.quick)
        drop_file(raw)
        bench_check(table, tools, work, check_size)
        bench_info_map(table, tools, work, map_size)
    finally:
        if not args.dir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(machine_line())
    print("speed = qemu-img time / vmstor-img time (above 1: vmstor-img is faster; check's goal of half "
          "qemu-img's time is 2x); memory ratio = vmstor-img peak / qemu-img peak (below 1: less)\n")
    print(table.render())


if __name__ == "__main__":
    main()
