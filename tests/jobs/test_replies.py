#!/usr/bin/python3
"""No reply can exhaust the daemon. A raw volume with a data block in every 8 KiB (the "Map bomb": two
extents per 8 KiB) is mapped: Volume.Map answers at most MAX_EXTENTS extents per call, pages continued
from the end of the last extent cover the whole image exactly as `qemu-img map --output=json` does, and
`vmstorctl vol-map` pages through it by itself. While Map or Check of a large image works, the same and
other clients are answered; vmstord's memory after a whole paged map is about what it was before.
Check with `repair` is refused with Busy while a job holds the file, and a bad `repair` value is refused
before polkit is asked."""

import json
import os
import time

import dbus

from jobs_harness import (JOB, MiB, OTHER_ACCOUNT, PROPERTIES, VOLUME, JobsTest, ensure_other_account,
                          main, pump, sv, unwrap)
from harness import BUS_NAME  # noqa: E402 (jobs_harness put tests/integration on sys.path)

MAX_EXTENTS = 65536  # Volume.Map's documented bound on one reply
BOMB_SIZE = 320 * MiB  # a data block per 8 KiB: 81920 extents, two pages
STRIDE = 8192
ANSWER_TIMEOUT = 120.0
RSS_BOUND = 96 * MiB  # generous: a page's reply is ~15 MB; the unpaged map of the bomb took hundreds of MB


def make_bomb(path, size):
    """A sparse raw file with one byte of data at the start of every 8 KiB."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in range(0, size, STRIDE):
            f.seek(offset)
            f.write(b"\x01")


def extent_key(extent):
    return tuple(extent.get(k) for k in ("start", "length", "depth", "present", "zero", "data", "offset"))


class RepliesTest(JobsTest):
    pool_name = "replies"

    @classmethod
    def setUpEnvironment(cls):
        super().setUpEnvironment()
        ensure_other_account()
        make_bomb(os.path.join(cls.target, "bomb.raw"), BOMB_SIZE)
        big = os.path.join(cls.target, "big.qcow2")
        done = os.system(f"qemu-img create -q -f qcow2 {big} 2T")
        if done != 0:
            raise AssertionError("qemu-img create of a 2 TiB image failed")

    def setUp(self):
        super().setUp()
        self.bomb = self.give_to_pool("bomb.raw")
        self.big = self.give_to_pool("big.qcow2")

    def volume_obj(self, path):
        return self.interface(str(path), VOLUME)

    def map_page(self, path, **options):
        return unwrap(self.volume_obj(path).Map(sv(options), timeout=ANSWER_TIMEOUT))

    def map_all(self, path):
        """Every page of Volume.Map, each continued from the end of the last extent of the one before."""
        pages = []
        offset = 0
        while True:
            page = self.map_page(path, offset=dbus.UInt64(offset))
            pages.append(page)
            self.assertLessEqual(len(page), MAX_EXTENTS)
            if len(page) < MAX_EXTENTS:
                return pages
            offset = page[-1]["start"] + page[-1]["length"]

    def qemu_map(self, name, fmt="raw"):
        return json.loads(self.qemu_img("map", "-U", "--output=json", "-f", fmt, self.pool_file(name)).stdout)

    def memory(self, field):
        """vmstord's VmRSS (resident now) or VmHWM (peak resident) in bytes."""
        with open(f"/proc/{self.env.vmstord_pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        self.fail(f"no {field} for vmstord")

    def reset_peak_memory(self):
        with open(f"/proc/{self.env.vmstord_pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # VmHWM starts again from VmRSS

    def assert_others_answered_first(self, slow, path):
        """Sends `slow(reply_handler, error_handler)`, then a property read of `path` on the same connection
        and one on another connection: all are answered, the read on the same connection before the slow
        call."""
        order = []
        errors = []
        other = dbus.bus.BusConnection(self.env.bus_address)
        try:
            def note(what):
                return lambda *args: order.append(what)

            def failed(what):
                return lambda error: (order.append(what), errors.append(error))

            slow(note("slow"), failed("slow"))
            same = dbus.Interface(self.bus.get_object(BUS_NAME, str(path), introspect=False), PROPERTIES)
            same.Get(VOLUME, "Capacity", reply_handler=note("same"), error_handler=failed("same"))
            theirs = dbus.Interface(other.get_object(BUS_NAME, str(path), introspect=False), PROPERTIES)
            theirs.Get(VOLUME, "Capacity", reply_handler=note("other"), error_handler=failed("other"))
            deadline = time.monotonic() + ANSWER_TIMEOUT
            while len(order) < 3 and time.monotonic() < deadline:
                pump(0.05)
        finally:
            other.close()
        self.assertEqual(errors, [])
        self.assertEqual(sorted(order), ["other", "same", "slow"])
        # vmstord answers one connection's calls in the order it handles them: a read sent after the slow
        # call and answered before it shows that the slow call did not hold the bus thread. (The other
        # connection's read is only checked to be answered: which of two connections' messages reaches
        # vmstord first depends on the machine's load, not on vmstord.)
        self.assertLess(order.index("same"), order.index("slow"), f"answers came as {order}")

    # Map -------------------------------------------------------------------------------------------
    def test_map_pages_cover_the_image_as_qemu_img_does(self):
        pages = self.map_all(self.bomb)
        self.assertGreaterEqual(len(pages), 2, "the bomb fits one page: the test does not page")
        self.assertEqual(len(pages[0]), MAX_EXTENTS)
        extents = [e for page in pages for e in page]
        self.assertEqual([extent_key(e) for e in extents], [extent_key(e) for e in self.qemu_map("bomb.raw")])

    def test_map_of_a_range(self):
        start, length = 5 * STRIDE + 100, 3 * STRIDE
        page = self.map_page(self.bomb, offset=dbus.UInt64(start), length=dbus.UInt64(length))
        self.assertEqual(page[0]["start"], start)
        self.assertEqual(page[-1]["start"] + page[-1]["length"], start + length)
        for before, after in zip(page, page[1:]):
            self.assertEqual(before["start"] + before["length"], after["start"])
        whole = {e["start"]: e for e in self.qemu_map("bomb.raw")}
        for extent in page[1:-1]:
            self.assertEqual(extent_key(extent), extent_key(whole[extent["start"]]))
        # Past the end: nothing left (at the end) or refused (beyond it).
        self.assertEqual(self.map_page(self.bomb, offset=dbus.UInt64(BOMB_SIZE)), [])
        self.assertDBusError("InvalidArgument", self.volume_obj(self.bomb).Map,
                             sv(offset=dbus.UInt64(BOMB_SIZE + 1)), mentions=("offset",))
        self.assertDBusError("InvalidArgument", self.volume_obj(self.bomb).Map,
                             sv(length=dbus.UInt64(0)), mentions=("length",))

    def test_vmstorctl_pages_through_the_whole_map(self):
        done = self.vmstorctl("--json", "vol-map", self.pool_name, "bomb.raw")
        self.assertEqual(done.returncode, 0, done.stderr)
        extents = json.loads(done.stdout)
        self.assertEqual([extent_key(e) for e in extents], [extent_key(e) for e in self.qemu_map("bomb.raw")])

    def test_others_are_answered_while_map_works(self):
        volume = self.volume_obj(self.bomb)
        self.assert_others_answered_first(
            lambda ok, failed: volume.Map(sv(), reply_handler=ok, error_handler=failed, timeout=ANSWER_TIMEOUT),
            self.bomb)

    def test_memory_of_maps_is_bounded_and_returned(self):
        self.volume_obj(self.big).Map(sv(), timeout=ANSWER_TIMEOUT)  # one extent: the code paths warm up
        before = self.memory("VmRSS")
        self.reset_peak_memory()
        for _ in range(3):
            self.volume_obj(self.bomb).Map(sv(), timeout=ANSWER_TIMEOUT)
        pump(0.5)
        peak, after = self.memory("VmHWM"), self.memory("VmRSS")
        self.assertLess(peak - before, RSS_BOUND, f"vmstord grew from {before} to {peak} bytes during Map")
        self.assertLess(after - before, RSS_BOUND, f"vmstord grew from {before} to {after} bytes after Map")

    # Check -----------------------------------------------------------------------------------------
    def test_others_are_answered_while_check_works(self):
        volume = self.volume_obj(self.big)
        self.assert_others_answered_first(
            lambda ok, failed: volume.Check(sv(), reply_handler=ok, error_handler=failed, timeout=ANSWER_TIMEOUT),
            self.big)

    def test_bad_repair_is_refused_before_polkit_is_asked(self):
        path = str(self.big)
        other = self.run_client(
            f"try:\n"
            f"    dbus.Interface(bus.get_object(BUS_NAME, {path!r}, introspect=False), {VOLUME!r})"
            f".Check(sv(repair='everything'))\n"
            f"    print('checked')\n"
            f"except dbus.exceptions.DBusException as e:\n"
            f"    print(e.get_dbus_name())\n", user=OTHER_ACCOUNT)
        self.assertEqual(other.returncode, 0, other.stderr)
        self.assertEqual(other.stdout.strip(), "org.vmstor.Storage1.Error.InvalidArgument")

    def test_repair_during_a_job_is_busy_naming_the_job(self):
        job = self.stalled_upload(self.big)
        try:
            pump(0.3)
            self.assertEqual(self.job(job)["State"], "running")
            self.assertDBusError("Busy", self.volume_obj(self.big).Check, sv(repair="leaks"), mentions=(job,))
        finally:
            self.interface(job, JOB).Cancel(sv())
        self.assertEqual(self.wait_job(job)["State"], "cancelled")

if __name__ == "__main__":
    main()
