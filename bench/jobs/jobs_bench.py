#!/usr/bin/python3
"""vmstord's data-moving jobs against qemu-img, cp and virsh on the same files, in one run.

usage: jobs_bench.py --vmstord PATH [--size GiB] [--quick] [--dir DIR] [--keep] [--warm-gib GiB]

Starts the private environment (scripts/private_env.py: a private libvirtd, bus and vmstord), makes a
raw image half filled with random, text-like and zero data (the rest holes) and times:
  Volume.Convert raw->qcow2 and qcow2->raw (wait=true)   vs  qemu-img convert -t writeback, cp + sync FILE
  the same with sync=false                              vs  qemu-img convert (cache=unsafe), cp --sparse=always
  Volume.Convert compressed (zstd, zlib)                vs  qemu-img convert -c at its best -m (1,2,4,8)
  Volume.Upload / Volume.Download of the whole image    vs  virsh vol-upload / vol-download (same libvirtd)
  a property Get on vmstord while a compressed convert runs, against the same Get when idle
A Markdown table of times and ratios (reference time / vmstord time: above 1 means vmstord is faster)
goes to stdout, progress to stderr. Every timed run starts with qcow2_bench's settle(): a sync, then
--warm-gib of memory touched and freed (see bench/README.md for why this VM needs it).
"""

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "scripts"))
sys.path.insert(0, os.path.dirname(HERE))

import dbus  # noqa: E402

from private_env import PrivateEnv  # noqa: E402
import qcow2_bench  # noqa: E402
from qcow2_bench import GiB, MiB, make_mixed_raw, measure, settle  # noqa: E402

BUS_NAME = "org.vmstor.Storage1"
ROOT = "/org/vmstor/Storage1"
POOL_NAME = "bench"
CALL_TIMEOUT = 3600  # seconds a wait=true call may take (dbus-python's default is 25)


def sv(**values):
    return dbus.Dictionary(values, signature="sv")


def log(message):
    print(message, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, env, quick):
        self.env = env
        self.quick = quick
        self.bus = dbus.bus.BusConnection(env.bus_address)
        self.account = pwd.getpwnam(env.account)
        self.pool_dir = os.path.join(env.pools_dir, POOL_NAME)
        self.scratch = env.path("scratch")  # the reference tools' outputs
        os.makedirs(self.scratch, exist_ok=True)
        self.rows = []

    def iface(self, path, interface):
        return dbus.Interface(self.bus.get_object(BUS_NAME, path, introspect=False), interface)

    def pool(self):
        return self.iface(f"{ROOT}/pool/{POOL_NAME}", "org.vmstor.Storage1.Pool")

    def volume(self, name):
        return self.iface(self.volume_path(name), "org.vmstor.Storage1.Volume")

    @staticmethod
    def volume_path(name):
        return f"{ROOT}/pool/{POOL_NAME}/volume/" + "".join(
            c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in name)

    def virsh(self, *args):
        subprocess.run(["virsh", "-q", "-c", self.env.uri, *args], check=True, stdout=subprocess.DEVNULL)

    def delete_volume(self, name):
        if os.path.exists(os.path.join(self.pool_dir, name)):
            self.volume(name).Delete(sv())

    def timed(self, call):
        settle()  # sync (no earlier run's writeback on our clock) and the same memory state for every run
        started = time.monotonic()
        call()
        return time.monotonic() - started

    def row(self, operation, vmstord_seconds, reference, reference_seconds, note=""):
        self.rows.append((operation, vmstord_seconds, reference, reference_seconds, note))
        ratio = reference_seconds / vmstord_seconds if vmstord_seconds and reference_seconds else None
        log(f"  {operation}: vmstord {vmstord_seconds:.2f} s, {reference} "
            f"{reference_seconds:.2f} s" + (f", ratio {ratio:.2f}" if ratio else ""))

    # Set-up ---------------------------------------------------------------------------------------
    def prepare(self, size):
        manager = self.iface(ROOT, "org.vmstor.Storage1.Manager")
        manager.CreatePool(POOL_NAME, "dir", sv(**{"target.path": self.pool_dir}), sv())
        self.source = os.path.join(self.pool_dir, "mixed.raw")
        log(f"making {size / GiB:g} GiB mixed raw image")
        make_mixed_raw(self.source, size)
        os.chown(self.source, self.account.pw_uid, self.account.pw_gid)
        self.pool().Refresh(sv())

    def convert(self, source, name, **options):
        self.delete_volume(name)
        pool = dbus.ObjectPath(f"{ROOT}/pool/{POOL_NAME}")
        return self.timed(lambda: self.volume(source).Convert(pool, name, sv(wait=True, **options),
                                                                        timeout=CALL_TIMEOUT))

    def reference(self, argv):
        settle()
        result = measure(argv)
        if result.error:
            raise RuntimeError(f"{' '.join(argv)}: {result.error}")
        return result.seconds

    # Operations -----------------------------------------------------------------------------------
    def bench_convert(self):
        log("convert raw->qcow2, qcow2->raw")
        qcow2_ref = os.path.join(self.scratch, "ref.qcow2")
        raw_ref = os.path.join(self.scratch, "ref.raw")
        # A job ends with its output on disk (default) or, with sync=false, in the page cache. The references
        # as durable as the first: qemu-img -t writeback and cp followed by sync FILE; as the second:
        # qemu-img's default (cache=unsafe) and a plain cp.
        synced = self.convert("mixed.raw", "mixed.qcow2", format="qcow2")
        unsynced = self.convert("mixed.raw", "nosync.qcow2", format="qcow2", sync=False)
        self.delete_volume("nosync.qcow2")
        to_qcow2 = ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", self.source, qcow2_ref]
        reference = self.reference(to_qcow2)
        os.unlink(qcow2_ref)
        self.row("convert raw->qcow2, sync=false", unsynced, "qemu-img convert (no sync)", reference)
        self.row("convert raw->qcow2", synced, "qemu-img convert -t writeback (synced)",
                 self.reference(to_qcow2[:2] + ["-t", "writeback"] + to_qcow2[2:]))
        self.row("convert raw->qcow2, sync=false", unsynced, "cp --sparse=always (no sync)",
                 self.reference(["cp", "--sparse=always", self.source, raw_ref]))
        os.unlink(raw_ref)
        cp_synced = self.reference(["sh", "-c", 'cp --sparse=always "$0" "$1" && sync "$1"', self.source, raw_ref])
        os.unlink(raw_ref)
        self.row("convert raw->qcow2", synced, "cp --sparse=always, then sync FILE (synced)", cp_synced)
        synced = self.convert("mixed.qcow2", "back.raw", format="raw")
        self.delete_volume("back.raw")
        unsynced = self.convert("mixed.qcow2", "back.raw", format="raw", sync=False)
        to_raw = ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2_ref, raw_ref]
        self.row("convert qcow2->raw, sync=false", unsynced, "qemu-img convert (no sync)", self.reference(to_raw))
        os.unlink(raw_ref)
        self.row("convert qcow2->raw", synced, "qemu-img convert -t writeback (synced)",
                 self.reference(to_raw[:2] + ["-t", "writeback"] + to_raw[2:]))
        self.row("convert qcow2->raw", synced, "cp --sparse=always of the raw bytes, then sync FILE (synced)",
                 cp_synced)
        self.delete_volume("back.raw")
        os.unlink(raw_ref)
        os.unlink(qcow2_ref)

    def bench_compress(self):
        target = os.path.join(self.scratch, "ref-c.qcow2")
        for kind in ("zstd", "zlib"):
            log(f"convert -c {kind}")
            mine = self.convert("mixed.raw", f"c-{kind}.qcow2", format="qcow2", compress=True,
                                compression_type=kind)
            best, best_m = None, None
            for m in (1, 2) if self.quick else (1, 2, 4, 8):
                seconds = self.reference(["qemu-img", "convert", "-c", "-m", str(m), "-f", "raw", "-O", "qcow2",
                                          "-o", f"compression_type={kind}", self.source, target])
                if best is None or seconds < best:
                    best, best_m = seconds, m
                os.unlink(target)
            self.row(f"convert -c {kind}", mine, f"qemu-img -c -m {best_m} (best)", best)
            self.delete_volume(f"c-{kind}.qcow2")

    def bench_upload_download(self, size):
        log("upload, download")
        for name in ("up.raw", "virsh-up.raw"):
            self.delete_volume(name)
            self.pool().CreateVolume(name, dbus.UInt64(size), sv(format="raw"))
        with open(self.source, "rb") as f:
            mine = self.timed(lambda: self.volume("up.raw").Upload(dbus.types.UnixFd(f.fileno()), sv(wait=True),
                                                                      timeout=CALL_TIMEOUT))
        self.row("upload", mine, "virsh vol-upload",
                 self.reference(["virsh", "-q", "-c", self.env.uri, "vol-upload", "--pool", POOL_NAME,
                                 "virsh-up.raw", self.source]))
        # Whoever reads the new volume first would pay for reading it from the disk: read it once, untimed.
        subprocess.run(["cat", os.path.join(self.pool_dir, "up.raw")], stdout=subprocess.DEVNULL, check=True)
        copy = os.path.join(self.scratch, "down.raw")
        with open(copy, "wb") as f:
            mine = self.timed(lambda: self.volume("up.raw").Download(dbus.types.UnixFd(f.fileno()), sv(wait=True),
                                                                        timeout=CALL_TIMEOUT))
        os.unlink(copy)
        self.row("download", mine, "virsh vol-download",
                 self.reference(["virsh", "-q", "-c", self.env.uri, "vol-download", "--pool", POOL_NAME,
                                 "up.raw", copy]))
        os.unlink(copy)
        with open(copy, "wb") as f:
            sparse = self.timed(lambda: self.volume("up.raw").Download(dbus.types.UnixFd(f.fileno()),
                                                                       sv(sparse=True, wait=True),
                                                                       timeout=CALL_TIMEOUT))
        os.unlink(copy)
        self.row("download sparse", sparse, "virsh vol-download --sparse",
                 self.reference(["virsh", "-q", "-c", self.env.uri, "vol-download", "--sparse", "--pool",
                                 POOL_NAME, "up.raw", copy]))
        os.unlink(copy)
        self.delete_volume("up.raw")
        self.delete_volume("virsh-up.raw")

    def property_reads(self, count=200):
        props = self.iface(self.volume_path("mixed.raw"), "org.freedesktop.DBus.Properties")
        times = []
        for _ in range(count):
            started = time.monotonic()
            props.Get("org.vmstor.Storage1.Volume", "Capacity")
            times.append(time.monotonic() - started)
        return times

    def bench_property_read(self):
        log("property reads, idle and during a compressed convert")
        idle = self.property_reads()
        self.delete_volume("busy.qcow2")
        job = self.volume("mixed.raw").Convert(dbus.ObjectPath(f"{ROOT}/pool/{POOL_NAME}"), "busy.qcow2",
                                               sv(format="qcow2", compress=True, compression_type="zlib"))
        busy = self.property_reads()
        state = self.iface(job, "org.freedesktop.DBus.Properties").Get("org.vmstor.Storage1.Job", "State")
        if state == "running":
            self.iface(job, "org.vmstor.Storage1.Job").Cancel(sv())
        else:
            log(f"  note: the convert was already {state} when the reads ended")
        deadline = time.monotonic() + 60
        while self.iface(job, "org.freedesktop.DBus.Properties").Get("org.vmstor.Storage1.Job", "State") == "running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cancelled convert {job} was still running 60 s after Cancel")
            time.sleep(0.1)
        self.delete_volume("busy.qcow2")
        for label, values in (("median", statistics.median), ("max", max)):
            self.row(f"property Get, {label} of 200", values(busy), "same Get while idle", values(idle),
                     note="during a zlib convert")

    # Output ---------------------------------------------------------------------------------------
    def table(self, size):
        lines = [f"vmstord jobs benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                 f"{os.cpu_count()} cores, image {size / GiB:g} GiB (half data), page cache warm", "",
                 "| operation | vmstord | reference | reference time | ratio (ref/vmstord) |",
                 "|---|---:|---|---:|---:|"]
        for operation, mine, reference, theirs, note in self.rows:
            small = mine < 0.1
            shown = (lambda s: f"{s * 1000:.2f} ms") if small else (lambda s: f"{s:.2f} s")
            ratio = theirs / mine if mine and theirs else float("nan")
            lines.append(f"| {operation}{' (' + note + ')' if note else ''} | {shown(mine)} | {reference} | "
                         f"{shown(theirs)} | {ratio:.2f} |")
        return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vmstord", default=os.environ.get("VMSTORD"), help="the vmstord executable")
    parser.add_argument("--size", type=float, help="image size in GiB (default 4; --quick: 0.25)")
    parser.add_argument("--quick", action="store_true", help="a small image and qemu-img -m 1, 2 only")
    parser.add_argument("--dir", help="state directory (default: a new one under /var/tmp, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the state directory")
    parser.add_argument("--warm-gib", type=float, default=4,
                        help="GiB of memory touched and freed before every timed run (default 4; 0: none)")
    args = parser.parse_args()
    qcow2_bench.WARM_BYTES = int(args.warm_gib * GiB)
    if not args.vmstord or not os.access(args.vmstord, os.X_OK):
        parser.error("give the vmstord executable with --vmstord (or $VMSTORD)")
    size = int((args.size or (0.25 if args.quick else 4)) * GiB) // MiB * MiB
    state = args.dir or tempfile.mkdtemp(prefix="vmstor-jobs-bench.", dir="/var/tmp")
    env = PrivateEnv(state, SOURCE_ROOT)
    try:
        env.start(os.path.abspath(args.vmstord))
        bench = Bench(env, args.quick)
        bench.prepare(size)
        bench.bench_convert()
        bench.bench_compress()
        bench.bench_upload_download(size)
        bench.bench_property_read()
        print(bench.table(size))
    finally:
        env.stop()
        if not args.dir and not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
