#!/usr/bin/python3
"""vmstor-img follows QEMU's image locking as qemu-img 7.2 does. Each case runs one command of both
tools, each on its own copy of the same small images, while `qemu-io` (standing in for a running VM)
holds one of them read-write or read-only (-r): the same exit code, the same stdout and stderr (the
program name aside), and every file qemu-img left unchanged unchanged. The other way round, `qemu-io`
cannot open for writing an image vmstor-img is writing (stopped with SIGSTOP mid-command)."""
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import difftest as dt

QEMU_IO = "qemu-io"
WAIT = 20.0  # seconds: the deadline of every wait below

# (held image, its format, command). The fixture: base.qcow2 <- top.qcow2 (snapshot s1), plain.qcow2
# (snapshot s1, no backing), nb.qcow2 (no backing), r.raw.
ON_IMAGE = [
    "info plain.qcow2", "info -U plain.qcow2", "info --force-share plain.qcow2",
    "check plain.qcow2", "check -U plain.qcow2", "check -r all plain.qcow2", "check -r leaks -U plain.qcow2",
    "map --output=json plain.qcow2", "map -U --output=json plain.qcow2",
    "measure -O qcow2 plain.qcow2", "measure -U -O qcow2 plain.qcow2",
    "compare plain.qcow2 nb.qcow2", "compare -U plain.qcow2 nb.qcow2", "compare nb.qcow2 plain.qcow2",
    "snapshot -l plain.qcow2", "snapshot -U -l plain.qcow2",
    "snapshot -c s2 plain.qcow2", "snapshot -a s1 plain.qcow2", "snapshot -d s1 plain.qcow2",
    "snapshot -U -c s2 plain.qcow2",
    "resize plain.qcow2 +1M", "resize -U plain.qcow2 +1M", "resize --force-share plain.qcow2 +1M",
    "create -f qcow2 plain.qcow2 1M", "create -f raw plain.qcow2 1M",
    "convert -O qcow2 plain.qcow2 out.qcow2", "convert -U -O qcow2 plain.qcow2 out.qcow2",
    "convert -O qcow2 nb.qcow2 plain.qcow2", "convert -U -O raw nb.qcow2 plain.qcow2",
    "rebase -u -b nb.qcow2 -F qcow2 plain.qcow2", "rebase -b nb.qcow2 -F qcow2 plain.qcow2",
    "commit plain.qcow2", "commit -U plain.qcow2", "commit --force-share plain.qcow2",
]
ON_BACKING = [
    "info top.qcow2", "info --backing-chain top.qcow2", "info -U --backing-chain top.qcow2",
    "check top.qcow2", "check -U top.qcow2", "check -r all top.qcow2",
    "map --output=json top.qcow2", "map -U --output=json top.qcow2",
    "measure -O qcow2 top.qcow2", "compare top.qcow2 nb.qcow2", "compare -U top.qcow2 nb.qcow2",
    "snapshot -l top.qcow2", "snapshot -c s2 top.qcow2", "snapshot -a s1 top.qcow2",
    "snapshot -d s1 top.qcow2", "resize top.qcow2 +1M",
    "convert -O qcow2 top.qcow2 out.qcow2", "convert -U -O qcow2 top.qcow2 out.qcow2",
    "rebase -u -b nb.qcow2 -F qcow2 top.qcow2", "rebase -b nb.qcow2 -F qcow2 top.qcow2",
    "rebase -U -b nb.qcow2 -F qcow2 top.qcow2",
    "rebase -b base.qcow2 -F qcow2 plain.qcow2", "rebase -U -b base.qcow2 -F qcow2 plain.qcow2",
    "commit top.qcow2", "commit -d top.qcow2",
    "create -f qcow2 -b base.qcow2 -F qcow2 new.qcow2", "create -f qcow2 -b base.qcow2 -F qcow2 new.qcow2 4M",
]
ON_RAW = [
    "info -f raw r.raw", "check -f raw r.raw", "map -f raw --output=json r.raw",
    "resize -f raw r.raw +1M", "convert -f raw -O qcow2 r.raw out.qcow2", "convert -O raw nb.qcow2 r.raw",
    "create -f raw r.raw 1M",
]
CASES = ([("plain.qcow2", "qcow2", c) for c in ON_IMAGE] + [("base.qcow2", "qcow2", c) for c in ON_BACKING] +
         [("r.raw", "raw", c) for c in ON_RAW])


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


def make_fixture(directory):
    sh(dt.QEMU_IMG, "create", "-q", "-f", "qcow2", "base.qcow2", "4M", cwd=directory)
    sh(QEMU_IO, "-f", "qcow2", "-c", "write -P 1 0 192k", "base.qcow2", cwd=directory)
    sh(dt.QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2", cwd=directory)
    sh(QEMU_IO, "-f", "qcow2", "-c", "write -P 2 64k 64k", "top.qcow2", cwd=directory)
    sh(dt.QEMU_IMG, "snapshot", "-c", "s1", "top.qcow2", cwd=directory)
    sh(QEMU_IO, "-f", "qcow2", "-c", "write -P 3 128k 64k", "top.qcow2", cwd=directory)
    shutil.copyfile(os.path.join(directory, "top.qcow2"), os.path.join(directory, "plain.qcow2"))
    sh(dt.QEMU_IMG, "rebase", "-u", "-b", "", "plain.qcow2", cwd=directory)
    sh(dt.QEMU_IMG, "create", "-q", "-f", "qcow2", "nb.qcow2", "4M", cwd=directory)
    sh(dt.QEMU_IMG, "create", "-q", "-f", "raw", "r.raw", "4M", cwd=directory)


def digests(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def ofd_bytes(path):
    """The bytes of `path` that some open file description holds an OFD lock on (/proc/locks)."""
    st = os.stat(path)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    held = set()
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "OFDLCK" in fields and device in fields:
                # The kernel merges neighbouring locks of one description: "START END" is a range.
                start, end = fields[-2], fields[-1]
                held.update(range(int(start), int(start) + 1000 if end == "EOF" else int(end) + 1))
    return held


def wait_for(what, predicate):
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {WAIT:.0f} s for {what}")
        time.sleep(0.002)


class Holder:
    """`qemu-io` with an image open (read-only with -r) until closed: what a running VM does."""

    def __init__(self, directory, name, fmt, read_only):
        self.path = os.path.join(directory, name)
        args = [QEMU_IO, "-f", fmt] + (["-r"] if read_only else []) + [name]
        self.process = subprocess.Popen(args, cwd=directory, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        # Its consistent-read byte (100) is the last it needs: held means it opened the image.
        wait_for(f"qemu-io {' '.join(args[1:])} to lock {name}", lambda: 100 in ofd_bytes(self.path)
                 or self.process.poll() is not None)
        if self.process.poll() is not None:
            raise AssertionError(f"qemu-io {' '.join(args[1:])} exited: {self.process.stderr.read()!r}")

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=WAIT)
        self.process.stderr.close()


def run_held(tool, directory, held, fmt, read_only, command):
    holder = Holder(directory, held, fmt, read_only)
    try:
        return subprocess.run([tool, *command.split()], cwd=directory, capture_output=True, timeout=120)
    finally:
        holder.close()


class LockingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="vmstor-locks-", dir=os.environ.get("QCOW2_SCRATCH_DIR"))
        cls.fixture = os.path.join(cls.root, "fixture")
        os.mkdir(cls.fixture)
        make_fixture(cls.fixture)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, True)

    def copy_fixture(self, name):
        directory = os.path.join(self.root, name)
        shutil.rmtree(directory, True)
        shutil.copytree(self.fixture, directory)
        self.addCleanup(shutil.rmtree, directory, True)
        return directory

    def check_case(self, case):
        held, fmt, command, read_only = case["held"], case["fmt"], case["command"], case["read_only"]
        label = f"{command} (qemu-io{' -r' if read_only else ''} holds {held})"
        theirs, mine = self.copy_fixture("qemu"), self.copy_fixture("vmstor")
        before = digests(theirs)
        expected = run_held(dt.QEMU_IMG, theirs, held, fmt, read_only, command)
        actual = run_held(dt.vmstor_img(), mine, held, fmt, read_only, command)
        dt.assert_no_signal(self, actual, label)
        program = os.path.basename(dt.vmstor_img())
        self.assertEqual((actual.returncode, actual.stderr.decode().replace(program, "qemu-img")),
                         (expected.returncode, expected.stderr.decode()), f"{label}: exit code and stderr")
        if expected.returncode != 0:
            self.assertEqual(actual.stdout.decode(), expected.stdout.decode(), f"{label}: stdout")
        # What qemu-img leaves alone (all of it when it refuses), vmstor-img must leave alone too.
        after_theirs, after_mine = digests(theirs), digests(mine)
        for name, digest in before.items():
            if after_theirs.get(name) == digest:
                self.assertEqual(after_mine.get(name), digest, f"{label}: {name} changed")
        if expected.returncode != 0:
            self.assertEqual(after_theirs, before, f"{label}: qemu-img refused yet changed files (test bug?)")

    def test_qemu_io_cannot_write_what_vmstor_img_writes(self):
        """While vmstor-img commits into big.qcow2 or converts into out.qcow2 (stopped with SIGSTOP once
        it holds the write lock byte of what it writes), qemu-io can open for writing neither that image
        nor the overlay or source; a reader (-r) of a convert's source still can, as with qemu-img.
        Afterwards the command completes and leaves no lock behind."""
        directory = self.copy_fixture("writer")
        sh(dt.QEMU_IMG, "create", "-q", "-f", "qcow2", "big.qcow2", "64M", cwd=directory)
        sh(QEMU_IO, "-f", "qcow2", "-c", "write -P 7 0 32M", "big.qcow2", cwd=directory)
        sh(dt.QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "big.qcow2", "-F", "qcow2", "over.qcow2", cwd=directory)
        sh(QEMU_IO, "-f", "qcow2", "-c", "write -P 8 0 32M", "over.qcow2", cwd=directory)
        scenarios = [
            (["commit", "over.qcow2"], "big.qcow2",
             [("big.qcow2", False, False), ("over.qcow2", False, False), ("big.qcow2", True, False)]),
            (["convert", "-O", "qcow2", "over.qcow2", "out.qcow2"], "out.qcow2",
             [("out.qcow2", False, False), ("over.qcow2", False, False), ("over.qcow2", True, True)]),
        ]
        for args, written, attempts in scenarios:
            with self.subTest(command=" ".join(args)):
                self.check_writer(directory, args, written, attempts)

    def check_writer(self, directory, args, written, attempts):
        label = f"vmstor-img {' '.join(args)}"
        # Started stopped, then let run a millisecond at a time until it holds the write byte (101) of
        # what it writes: it is then stopped inside its work, however fast the machine.
        process = subprocess.Popen(["sh", "-c", 'kill -STOP $$; exec "$0" "$@"', dt.vmstor_img(), *args],
                                   cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        target = os.path.join(directory, written)

        def stopped():
            with open(f"/proc/{process.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z")

        try:
            wait_for(f"{label} to stop itself before it starts", stopped)
            deadline = time.monotonic() + WAIT
            while not (os.path.exists(target) and 101 in ofd_bytes(target)):
                self.assertLess(time.monotonic(), deadline, f"{label}: no write lock on {written} in {WAIT} s")
                os.kill(process.pid, signal.SIGCONT)
                time.sleep(0.001)
                os.kill(process.pid, signal.SIGSTOP)
                wait_for(f"{label} to stop", stopped)
                if process.poll() is not None:
                    self.fail(f"{label} ended before it was seen locking {written}: {process.stderr.read()!r}")
            for name, read_only, allowed in attempts:
                io = subprocess.run([QEMU_IO, "-f", "qcow2"] + (["-r"] if read_only else []) +
                                    ["-c", "read 0 512", name], cwd=directory, capture_output=True, timeout=WAIT)
                opened = io.returncode == 0 and b"Failed to get" not in io.stderr
                self.assertEqual(opened, allowed, f"qemu-io{' -r' if read_only else ''} {name} while {label} "
                                 f"runs: {dt.describe(io)}")
                if not allowed:
                    self.assertIn(b"Failed to get", io.stderr, f"qemu-io {name}: {dt.describe(io)}")
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
            process.wait(timeout=120)
        self.assertEqual(process.returncode, 0, f"{label}: {process.stderr.read().decode(errors='replace')}")
        process.stderr.close()
        self.assertEqual(ofd_bytes(target), set(), f"{written}: locks left after {label} ended")


dt.add_cases(LockingTest, "held", [
    {"name": f"{'ro' if ro else 'rw'} {held} {command}", "held": held, "fmt": fmt, "command": command,
     "read_only": ro} for held, fmt, command in CASES for ro in (False, True)], LockingTest.check_case)

if __name__ == "__main__":
    dt.main()
