"""What the job and layer tests share beyond tests/integration/harness.py: job properties and their end,
images made as root and handed to the pool's account, a second client process, qemu-img helpers."""

import json
import os
import pwd
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import dbus  # noqa: E402

from harness import (BUS_NAME, MiB, PROPERTIES, VOLUME, IntegrationTest, main,  # noqa: E402,F401
                     pool_path, pump, sv, unwrap, volume_path)
from private_env import ensure_account  # noqa: E402 (harness put scripts/ on sys.path)

JOB = "org.vmstor.Storage1.Job"
GiB = 1024 * MiB
OTHER_ACCOUNT = "vmstorother"  # a second unprivileged uid, neither root nor the daemon's account
JOB_TIMEOUT = 120.0


def ensure_other_account():
    return ensure_account(OTHER_ACCOUNT)


def unix_fd(path, flags):
    """A D-Bus fd argument for a file opened here (dbus-python keeps its own duplicate)."""
    fd = os.open(path, flags)
    try:
        return dbus.types.UnixFd(fd)
    finally:
        os.close(fd)


def allocated(path):
    return os.stat(path).st_blocks * 512


def write_pattern_file(path, size, chunks):
    """A sparse raw file: `chunks` is a list of (offset, bytes) written into an otherwise empty file."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in chunks:
            f.seek(offset)
            f.write(data)


def write_random_file(path, size, block=64 * MiB):
    """A fully allocated file of random bytes (one random block repeated, each copy made distinct)."""
    base = os.urandom(block)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            n = min(block, size - written)
            # The first 8 bytes of each block name it, so no two blocks are the same.
            f.write(written.to_bytes(8, "little") + base[8:n])
            written += n


class JobsTest(IntegrationTest):
    """A dir pool named `pool_name` for the class, and helpers for jobs and images in it."""

    pool_name = "jobs"

    @classmethod
    def setUpEnvironment(cls):
        cls.target = cls.create_pool(cls.pool_name)
        cls.account = pwd.getpwnam(cls.env.account)
        cls.scratch = cls.env.path("scratch")  # files outside any pool (sources and downloads)
        os.makedirs(cls.scratch, exist_ok=True)

    # Images -------------------------------------------------------------------------------------
    def pool_file(self, name):
        return os.path.join(self.target, name)

    def give_to_pool(self, name):
        """Hands a file made as root in the pool directory to the account, and refreshes the pool."""
        os.chown(self.pool_file(name), self.account.pw_uid, self.account.pw_gid)
        self.pool(self.pool_name).Refresh(sv())
        self.wait_object(volume_path(self.pool_name, name), VOLUME)
        return dbus.ObjectPath(volume_path(self.pool_name, name))

    def qemu_img(self, *args, check=True):
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=300)
        if check:
            self.assertEqual(done.returncode, 0, f"qemu-img {' '.join(args)}: {done.stderr}{done.stdout}")
        return done

    def qemu_io(self, fmt, path, command, check=True):
        done = subprocess.run(["qemu-io", "-f", fmt, "-c", command, path], capture_output=True, text=True,
                              timeout=120)
        if check:
            self.assertEqual(done.returncode, 0, f"qemu-io {command}: {done.stderr}{done.stdout}")
            self.assertNotIn("fail", done.stdout.lower() + done.stderr.lower(),
                             f"qemu-io {command}: {done.stdout}{done.stderr}")
        return done

    def assert_check_clean(self, path, fmt="qcow2"):
        done = self.qemu_img("check", "-U", "--output=json", "-f", fmt, path, check=False)
        self.assertEqual(done.returncode, 0, f"qemu-img check {path}: {done.stdout}{done.stderr}")
        result = json.loads(done.stdout)
        for key in ("check-errors", "corruptions", "leaks"):
            self.assertEqual(result.get(key, 0), 0, f"qemu-img check {path}: {result}")
        return result

    def assert_same_content(self, a, b, fmt_a, fmt_b):
        done = self.qemu_img("compare", "-U", "-f", fmt_a, "-F", fmt_b, a, b, check=False)
        self.assertEqual(done.returncode, 0, f"qemu-img compare {a} {b}: {done.stdout}{done.stderr}")

    def volume_files(self):
        return sorted(os.listdir(self.target))

    def pool_state(self):
        """What a refused or cancelled call must leave as it was: files, virsh's list, the D-Bus tree."""
        self.pool(self.pool_name).Refresh(sv())
        pump(0.3)
        tree = sorted(p for p, ifaces in self.managed_objects().items() if VOLUME in ifaces)
        return self.volume_files(), self.virsh_volumes(self.pool_name), tree

    # QEMU holding an image ------------------------------------------------------------------
    def start_writer(self, name):
        """qemu-io holding the image open for writing (with QEMU's OFD locks) until its stdin closes."""
        path = self.pool_file(name)
        writer = subprocess.Popen(["qemu-io", "-f", "qcow2", path], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        inode = f":{os.stat(path).st_ino} "
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open("/proc/locks") as locks:
                if any(inode in line for line in locks):
                    return writer
            time.sleep(0.05)
        writer.stdin.close()
        writer.wait(30)
        self.fail(f"qemu-io did not lock {path}")

    def stop_writer(self, writer):
        writer.stdin.close()
        self.assertEqual(writer.wait(30), 0)

    # Jobs ---------------------------------------------------------------------------------------
    def job(self, path):
        return self.properties(str(path), JOB)

    def wait_job(self, path, timeout=JOB_TIMEOUT):
        """Polls the job until it is no longer running; returns its last properties."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            props = self.job(path)
            if props["State"] != "running":
                return props
            pump(0.1)
        self.fail(f"job {path} still running after {timeout} s")

    def wait_bytes_done(self, path, timeout=30.0):
        """Waits until the running job has copied its first bytes; returns its properties."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            props = self.job(path)
            self.assertEqual(props["State"], "running", f"job {path} ended before it copied a byte: {props}")
            if props["BytesDone"] > 0:
                return props
            pump(0.05)
        self.fail(f"job {path} copied no byte within {timeout} s")

    def assert_completed(self, path, timeout=JOB_TIMEOUT):
        props = self.wait_job(path, timeout)
        self.assertEqual(props["State"], "completed", f"job {path}: {props}")
        return props

    def stalled_upload(self, volume):
        """An Upload into `volume` from a pipe whose write end is kept here, never written, until the test
        ends; returns the job's path."""
        read_end, write_end = os.pipe()
        try:
            job = self.interface(str(volume), VOLUME).Upload(dbus.types.UnixFd(read_end), sv())
        finally:
            os.close(read_end)
        self.addCleanup(os.close, write_end)
        return str(job)

    def list_jobs(self):
        return [str(p) for p in self.manager().ListJobs(sv())]

    def client_prelude(self):
        """What run_client puts before a snippet: `bus`, `dbus`, `sv`, `path` and `BUS_NAME`."""
        return ("import sys, dbus\n"
                f"bus = dbus.bus.BusConnection({self.env.bus_address!r})\n"
                "def sv(**v): return dbus.Dictionary(v, signature='sv')\n"
                f"path = {pool_path(self.pool_name)!r}\n"
                f"BUS_NAME = {BUS_NAME!r}\n")

    def run_client(self, code, user=None, timeout=60):
        """Runs a Python snippet as another bus client (as `user` when given); returns the finished process.

        The snippet has `bus`, `dbus`, `sv` and `path` (the pool's object path) defined."""
        argv = ["/usr/bin/python3", "-c", self.client_prelude() + code]
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/")
