#!/usr/bin/python3
"""Jobs and the data-moving methods: progress and Completed, cancel, wait, ListJobs, clients that leave or
look on, another uid's Cancel; CloneVolume, Convert, ImportVolume, Upload and Download against qemu-img
and cmp; bad options refused with nothing left behind."""

import json
import os
import subprocess
import time

import dbus

from jobs_harness import (GiB, JOB, JOB_TIMEOUT, MiB, OTHER_ACCOUNT, PROPERTIES, VOLUME, JobsTest, allocated,
                          ensure_other_account, main, unix_fd, pool_path, pump, sv, volume_path, write_pattern_file,
                          write_random_file)

BIG = 1 * GiB  # the random volume behind the slow jobs and the upload/download round trip


def lasting(seconds):
    """The rate_limit that makes a job over BIG bytes last `seconds`, however fast this machine is."""
    return dbus.UInt64(BIG // seconds)


class JobTests(JobsTest):
    pool_name = "jobs"

    @classmethod
    def setUpEnvironment(cls):
        super().setUpEnvironment()
        ensure_other_account()
        cls.random_source = os.path.join(cls.scratch, "random.raw")
        write_random_file(cls.random_source, BIG)
        cls.big = None

    def big_volume(self):
        """A 1 GiB raw volume of random data (imported from a file once, then shared)."""
        if JobTests.big is None:
            with open(self.random_source, "rb") as f:
                job = self.pool(self.pool_name).ImportVolume("big.raw", dbus.types.UnixFd(f.fileno()),
                                                              sv(format="raw", wait=True), timeout=JOB_TIMEOUT)
            self.assert_completed(job)
            JobTests.big = dbus.ObjectPath(volume_path(self.pool_name, "big.raw"))
        return JobTests.big

    def sparse_volume(self, name, size=64 * MiB, fmt="raw"):
        """A volume with data at a few places and holes elsewhere, made with qemu-io (for qcow2) or by hand."""
        chunks = [(0, b"\x11" * MiB), (size // 2, os.urandom(MiB)), (size - 4096, b"text-like line\n" * 273)]
        if fmt == "raw":
            write_pattern_file(self.pool_file(name), size, chunks)
        else:
            self.qemu_img("create", "-q", "-f", "qcow2", self.pool_file(name), str(size))
            raw = os.path.join(self.scratch, name + ".raw")
            write_pattern_file(raw, size, chunks)
            self.qemu_img("convert", "-f", "raw", "-O", "qcow2", "-n", raw, self.pool_file(name))
            os.unlink(raw)
        return self.give_to_pool(name)

    def volume_file(self, path):
        return self.properties(path, VOLUME)["Path"]

    # Progress, signals, wait ---------------------------------------------------------------------
    def test_progress_goes_from_zero_to_one_and_completed_arrives(self):
        big = self.big_volume()
        changes, completed = [], []
        watch_props = self.bus.add_signal_receiver(
            lambda iface, changed, invalidated, path=None: changes.append((str(path), dict(changed))),
            "PropertiesChanged", PROPERTIES, None, None, path_keyword="path")
        watch_done = self.bus.add_signal_receiver(
            lambda ok, name, message, path=None: completed.append((str(path), bool(ok), str(name))),
            "Completed", JOB, None, None, path_keyword="path")
        try:
            job = str(self.pool(self.pool_name).CloneVolume(big, "progress.qcow2",
                                                            sv(format="qcow2", compress=True,
                                                               compression_type="zstd", rate_limit=lasting(4))))
            first = self.job(job)
            deadline = time.monotonic() + 120
            while not any(c[0] == job for c in completed) and time.monotonic() < deadline:
                pump(0.1)
        finally:
            watch_props.remove()
            watch_done.remove()
        self.assertIn((job, True, ""), completed, f"no successful Completed for {job}: {completed}")
        self.assertEqual(first["Operation"], "pool-clone-volume")
        self.assertEqual(first["Bytes"], BIG)
        self.assertTrue(first["ProgressValid"])
        self.assertLess(first["Progress"], 1.0, "the job was already done when the call returned")
        progress = [c[1]["Progress"] for c in changes if c[0] == job and "Progress" in c[1]]
        done = [c[1]["BytesDone"] for c in changes if c[0] == job and "BytesDone" in c[1]]
        self.assertTrue(progress, "no PropertiesChanged with Progress while the job ran")
        self.assertEqual(progress, sorted(progress), "Progress went backwards")
        self.assertTrue(any(0 < p < 1 for p in progress), f"no intermediate Progress signalled: {progress}")
        self.assertEqual(done, sorted(done), "BytesDone went backwards")
        final = self.job(job)
        self.assertEqual(final["State"], "completed")
        self.assertEqual(final["Progress"], 1.0)
        self.assertEqual(final["BytesDone"], final["Bytes"])
        self.assertGreaterEqual(final["ExpectedEndTime"], final["StartTime"])
        self.assertEqual(final["StartedByUID"], 0)
        self.assert_check_clean(self.pool_file("progress.qcow2"))
        self.assert_same_content(self.random_source, self.pool_file("progress.qcow2"), "raw", "qcow2")

    def test_cancel_midway_leaves_the_pool_as_before(self):
        big = self.big_volume()
        before = self.pool_state()
        # Capped to last 30 s: time enough to cancel mid-way.
        job = self.pool(self.pool_name).CloneVolume(big, "cancelled.qcow2",
                                                    sv(format="qcow2", compress=True, compression_type="zlib",
                                                       rate_limit=lasting(30)))
        self.wait_bytes_done(job)
        self.assertTrue(self.job(job)["Cancelable"])
        self.interface(job, JOB).Cancel(sv())
        props = self.wait_job(job, timeout=30)
        self.assertEqual(props["State"], "cancelled", props)
        self.assertLess(props["BytesDone"], props["Bytes"], "the job ended before the cancel reached it")
        self.assertFalse(os.path.exists(self.pool_file("cancelled.qcow2")), "a cancelled clone left its file")
        self.assertEqual(self.pool_state(), before)

    def test_wait_returns_only_when_the_job_completed(self):
        big = self.big_volume()
        started = time.monotonic()
        # A job of at least 3 s: a call that did not wait would find it still running.
        job = self.pool(self.pool_name).CloneVolume(big, "wait-dst.qcow2",
                                                    sv(format="qcow2", compress=True, compression_type="zstd",
                                                       rate_limit=lasting(3), wait=True), timeout=JOB_TIMEOUT)
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 3.0, "the job ran faster than its rate_limit allows")
        props = self.job(job)
        self.assertEqual(props["State"], "completed")
        self.assertEqual(props["BytesDone"], props["Bytes"])
        self.assertGreaterEqual(elapsed, (props["ExpectedEndTime"] - props["StartTime"]) / 1e6 - 0.05,
                                "the call returned before the job's recorded end")
        self.assertTrue(os.path.exists(self.pool_file("wait-dst.qcow2")))
        self.assertIn(volume_path(self.pool_name, "wait-dst.qcow2"), self.managed_objects())

    def test_failing_job_with_wait_returns_its_error_and_leaves_nothing(self):
        before = self.pool_state()
        read_end, write_end = os.pipe()
        os.write(write_end, b"\x5a" * 4096)  # less than a pipe holds, so this does not block
        os.close(write_end)  # the stream ends after 4 KiB, the import was promised 8 MiB
        try:
            with self.assertRaises(dbus.exceptions.DBusException) as raised:
                self.pool(self.pool_name).ImportVolume("short.raw", dbus.types.UnixFd(read_end),
                                                       sv(format="raw", length=dbus.UInt64(8 * MiB), wait=True))
        finally:
            os.close(read_end)
        # A stream shorter than the length it announced is the caller's error (lib/storage/image_jobs.cpp).
        self.assertEqual(raised.exception.get_dbus_name(), "org.vmstor.Storage1.Error.InvalidArgument",
                         raised.exception.get_dbus_message())
        self.assertIn("ended after 4096 of the 8388608 bytes", raised.exception.get_dbus_message())
        self.assertEqual(self.pool_state(), before)
        failed = [j for j in self.list_jobs() if self.job(j)["State"] == "failed"]
        self.assertTrue(failed, "the failed import is not listed as a failed job")

    def test_list_jobs_shows_running_and_recently_finished_jobs(self):
        big = self.big_volume()
        quick = self.pool(self.pool_name).CloneVolume(self.sparse_volume("list-src.raw"), "list-quick.raw",
                                                      sv(wait=True))
        slow = str(self.pool(self.pool_name).CloneVolume(big, "list-slow.qcow2",
                                                         sv(format="qcow2", compress=True, compression_type="zlib",
                                                            rate_limit=lasting(30))))
        try:
            listed = self.list_jobs()
            self.assertIn(str(quick), listed, "a job finished a moment ago is not listed")
            self.assertIn(slow, listed, "a running job is not listed")
            self.assertEqual(self.job(slow)["State"], "running")
            self.assertEqual(self.job(quick)["State"], "completed")
        finally:
            self.interface(slow, JOB).Cancel(sv())
            self.wait_job(slow)
        self.assertIn(slow, self.list_jobs(), "a cancelled job vanished at once")

    def test_two_clients_see_the_same_job(self):
        source = self.sparse_volume("two-src.raw", 128 * MiB)
        job = str(self.pool(self.pool_name).CloneVolume(source, "two-dst.qcow2", sv(format="qcow2")))
        self.assert_completed(job)
        other = self.run_client(
            f"import json\n"
            f"p = dbus.Interface(bus.get_object(BUS_NAME, {job!r}, introspect=False), "
            f"'org.freedesktop.DBus.Properties').GetAll({JOB!r})\n"
            f"print(json.dumps({{k: (str(v) if isinstance(v, dbus.String) else v) for k, v in p.items() "
            f"if k in ('State', 'Bytes', 'BytesDone', 'Operation', 'StartTime')}}))\n"
            f"print(sorted(str(j) for j in dbus.Interface(bus.get_object(BUS_NAME, '/org/vmstor/Storage1', "
            f"introspect=False), 'org.vmstor.Storage1.Manager').ListJobs(sv())))\n")
        self.assertEqual(other.returncode, 0, other.stderr)
        lines = other.stdout.splitlines()
        seen = json.loads(lines[0])
        mine = self.job(job)
        self.assertEqual(seen, {k: mine[k] for k in seen})
        self.assertEqual(len(seen), 5)
        self.assertIn(job, lines[1])

    def test_a_client_that_disconnects_does_not_stop_its_job(self):
        big = self.big_volume()
        started = self.run_client(
            f"j = dbus.Interface(bus.get_object(BUS_NAME, path, introspect=False), 'org.vmstor.Storage1.Pool')"
            f".CloneVolume(dbus.ObjectPath({big!r}), 'orphan.qcow2', sv(format='qcow2', compress=True, "
            f"compression_type='zstd', rate_limit=dbus.UInt64({int(lasting(4))})))\nprint(j)\n")
        self.assertEqual(started.returncode, 0, started.stderr)
        job = started.stdout.strip()
        self.assertTrue(job.startswith("/org/vmstor/Storage1/job/"), job)
        self.assertEqual(self.job(job)["State"], "running", "the job ended before its client went away")
        self.assert_completed(job)
        self.assertIn(volume_path(self.pool_name, "orphan.qcow2"), self.managed_objects())
        self.assert_same_content(self.random_source, self.pool_file("orphan.qcow2"), "raw", "qcow2")

    def test_cancel_by_another_uid_is_refused(self):
        big = self.big_volume()
        job = str(self.pool(self.pool_name).CloneVolume(big, "guarded.qcow2",
                                                        sv(format="qcow2", compress=True, compression_type="zlib",
                                                           rate_limit=lasting(30))))
        try:
            other = self.run_client(
                f"try:\n"
                f"    dbus.Interface(bus.get_object(BUS_NAME, {job!r}, introspect=False), {JOB!r}).Cancel(sv())\n"
                f"    print('cancelled')\n"
                f"except dbus.exceptions.DBusException as e:\n"
                f"    print(e.get_dbus_name())\n", user=OTHER_ACCOUNT)
            self.assertEqual(other.returncode, 0, other.stderr)
            self.assertEqual(other.stdout.strip(), "org.vmstor.Storage1.Error.NotAuthorized")
            pump(0.5)
            self.assertEqual(self.job(job)["State"], "running", "another uid's refused Cancel stopped the job")
        finally:
            self.interface(job, JOB).Cancel(sv())
        self.assertEqual(self.wait_job(job)["State"], "cancelled")

    # Data ------------------------------------------------------------------------------------------
    def test_upload_then_download_one_gib_gives_the_same_bytes(self):
        target = self.pool(self.pool_name).CreateVolume("updown.raw", dbus.UInt64(BIG), sv(format="raw"))
        with open(self.random_source, "rb") as f:
            job = self.volume_obj(target).Upload(dbus.types.UnixFd(f.fileno()), sv(wait=True), timeout=JOB_TIMEOUT)
        props = self.assert_completed(job)
        self.assertEqual(props["BytesDone"], BIG)
        self.assertEqual(subprocess.run(["cmp", self.random_source, self.pool_file("updown.raw")]).returncode, 0)
        copy = os.path.join(self.scratch, "downloaded.raw")
        with open(copy, "wb") as f:
            job = self.volume_obj(target).Download(dbus.types.UnixFd(f.fileno()), sv(wait=True), timeout=JOB_TIMEOUT)
        self.assert_completed(job)
        try:
            self.assertEqual(subprocess.run(["cmp", self.random_source, copy]).returncode, 0,
                             "the downloaded bytes differ from the uploaded ones")
        finally:
            os.unlink(copy)

    def test_sparse_download_of_a_qcow2_volume_keeps_holes(self):
        source = self.sparse_volume("down-src.qcow2", 64 * MiB, fmt="qcow2")
        copy = os.path.join(self.scratch, "down.raw")
        with open(copy, "wb") as f:
            self.assert_completed(self.volume_obj(source).Download(dbus.types.UnixFd(f.fileno()),
                                                                   sv(sparse=True, wait=True)))
        try:
            self.assertEqual(os.path.getsize(copy), 64 * MiB)
            self.assert_same_content(copy, self.pool_file("down-src.qcow2"), "raw", "qcow2")
            self.assertLess(allocated(copy), 8 * MiB, "a sparse download wrote the zero ranges")
        finally:
            os.unlink(copy)

    def test_plain_download_into_a_used_file_writes_every_zero(self):
        # Into a regular file, zero ranges are made by the file system (FALLOC_FL_ZERO_RANGE), not
        # written: they must still overwrite what the file held, and stay allocated as written zeroes.
        source = self.sparse_volume("down-full.qcow2", 64 * MiB, fmt="qcow2")
        copy = os.path.join(self.scratch, "down-full.raw")
        with open(copy, "wb") as f:
            f.write(b"\xee" * (80 * MiB))
        with open(copy, "r+b") as f:
            self.assert_completed(self.volume_obj(source).Download(dbus.types.UnixFd(f.fileno()),
                                                                   sv(wait=True)))
        try:
            with open(copy, "r+b") as f:
                f.truncate(64 * MiB)  # past the download: the old bytes, not the download's business
            self.assert_same_content(copy, self.pool_file("down-full.qcow2"), "raw", "qcow2")
            self.assertGreaterEqual(allocated(copy), 64 * MiB, "a plain download left holes")
        finally:
            os.unlink(copy)

    def test_upload_of_a_sparse_file_into_raw_writes_its_holes_as_zeroes(self):
        # A regular file into raw goes the kernel's way (copy_file_range, holes zeroed without reading):
        # the result must be what reading the file from its position would have written.
        with open(self.pool_file("holes.raw"), "wb") as f:
            f.write(b"\xaa" * (32 * MiB))
        target = self.give_to_pool("holes.raw")
        source = os.path.join(self.scratch, "holes.src")
        write_pattern_file(source, 24 * MiB, [(MiB, os.urandom(3 * MiB)), (20 * MiB, b"abc\n" * 65536)])
        with open(source, "rb") as f:
            f.seek(MiB)
            job = self.volume_obj(target).Upload(dbus.types.UnixFd(f.fileno()),
                                                 sv(offset=dbus.UInt64(2 * MiB), wait=True), timeout=JOB_TIMEOUT)
            self.assertEqual(os.lseek(f.fileno(), 0, os.SEEK_CUR), 24 * MiB, "where a read would leave the file")
        self.assertEqual(self.assert_completed(job)["BytesDone"], 23 * MiB)
        with open(source, "rb") as f:
            expected = b"\xaa" * (2 * MiB) + f.read()[MiB:] + b"\xaa" * (7 * MiB)
        with open(self.pool_file("holes.raw"), "rb") as f:
            self.assertTrue(f.read() == expected, "the volume differs from what was uploaded")
        self.assertGreaterEqual(allocated(self.pool_file("holes.raw")), 32 * MiB,
                         "a plain upload freed space where it should have written zeroes")

    def test_upload_and_download_at_an_offset(self):
        target = self.pool(self.pool_name).CreateVolume("ranged.qcow2", dbus.UInt64(16 * MiB), sv(format="qcow2"))
        data = os.urandom(MiB)
        feeder = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            job = self.volume_obj(target).Upload(dbus.types.UnixFd(feeder.stdout.fileno()),
                                                 sv(offset=dbus.UInt64(4 * MiB), length=dbus.UInt64(MiB)))
            feeder.stdin.write(data)
            feeder.stdin.close()
            self.assert_completed(job)
        finally:
            feeder.stdout.close()
            feeder.wait()
        self.assert_check_clean(self.pool_file("ranged.qcow2"))
        copy = os.path.join(self.scratch, "ranged.part")
        with open(copy, "wb") as f:
            self.assert_completed(self.volume_obj(target).Download(
                dbus.types.UnixFd(f.fileno()), sv(offset=dbus.UInt64(4 * MiB), length=dbus.UInt64(MiB), wait=True)))
        with open(copy, "rb") as f:
            self.assertEqual(f.read(), data)
        os.unlink(copy)

    def test_download_into_a_pipe_closed_by_its_reader_fails_the_job_not_the_daemon(self):
        target = self.pool(self.pool_name).CreateVolume("closed-pipe.raw", dbus.UInt64(16 * MiB),
                                                        sv(format="raw"))
        read_end, write_end = os.pipe()
        os.close(read_end)  # nobody will read: the first write gets EPIPE (and SIGPIPE, if not ignored)
        try:
            with self.assertRaises(dbus.exceptions.DBusException) as failed:
                self.volume_obj(target).Download(dbus.types.UnixFd(write_end), sv(wait=True))
        finally:
            os.close(write_end)
        self.assertEqual(failed.exception.get_dbus_name(), "org.vmstor.Storage1.Error.Failed")
        self.assertIn("download stream", failed.exception.get_dbus_message())
        # The daemon lives on and answers.
        self.assertEqual(self.properties(target, VOLUME)["Name"], "closed-pipe.raw")

    def test_import_from_a_file_and_from_a_pipe(self):
        source = os.path.join(self.scratch, "import.raw")
        write_pattern_file(source, 32 * MiB, [(MiB, os.urandom(3 * MiB)), (20 * MiB, b"abc\n" * 65536)])
        with open(source, "rb") as f:
            job = self.pool(self.pool_name).ImportVolume("from-file.qcow2", dbus.types.UnixFd(f.fileno()),
                                                         sv(sparse=True, wait=True))
        self.assert_completed(job)
        imported = self.pool_file("from-file.qcow2")
        self.assertEqual(self.qemu_img_info(imported)["format"], "qcow2", "ImportVolume's default format")
        self.assertEqual(self.qemu_img_info(imported)["virtual-size"], 32 * MiB)
        self.assert_check_clean(imported)
        self.assert_same_content(source, imported, "raw", "qcow2")
        self.assertLess(allocated(imported), 8 * MiB, "zero ranges of the source were allocated")

        cat = subprocess.Popen(["cat", source], stdout=subprocess.PIPE)
        try:
            job = self.pool(self.pool_name).ImportVolume("from-pipe.raw", dbus.types.UnixFd(cat.stdout.fileno()),
                                                         sv(format="raw", length=dbus.UInt64(32 * MiB),
                                                            sparse=True, wait=True))
        finally:
            cat.stdout.close()
            cat.wait()
        self.assert_completed(job)
        self.assertEqual(subprocess.run(["cmp", source, self.pool_file("from-pipe.raw")]).returncode, 0)
        self.assertLess(allocated(self.pool_file("from-pipe.raw")), 8 * MiB, "sparse import wrote zeroes")
        os.unlink(source)

    def test_import_from_a_pipe_needs_a_length(self):
        before = self.pool_state()
        read_end, write_end = os.pipe()
        os.close(write_end)
        try:
            self.assertDBusError("InvalidArgument", self.pool(self.pool_name).ImportVolume, "nolength.raw",
                                 dbus.types.UnixFd(read_end), sv(format="raw"), mentions=["length"])
        finally:
            os.close(read_end)
        self.assertEqual(self.pool_state(), before)

    def test_compressed_convert_zlib_and_zstd(self):
        source = self.sparse_volume("conv-src.raw", 64 * MiB)
        for kind in ("zlib", "zstd"):
            with self.subTest(compression=kind):
                name = f"conv-{kind}.qcow2"
                job = self.volume_obj(source).Convert(dbus.ObjectPath(pool_path(self.pool_name)), name,
                                                      sv(format="qcow2", compress=True, compression_type=kind,
                                                         wait=True))
                self.assert_completed(job)
                result = self.assert_check_clean(self.pool_file(name))
                self.assertGreater(result.get("compressed-clusters", 0), 0, f"{kind}: nothing was compressed")
                info = self.qemu_img_info(self.pool_file(name))
                self.assertEqual(info["format-specific"]["data"]["compression-type"], kind)
                self.assert_same_content(self.pool_file("conv-src.raw"), self.pool_file(name), "raw", "qcow2")

    def flushes_of(self, path, call):
        """How often vmstord flushed `path` (fdatasync or fsync) while `call` ran, counted with strace."""
        log_file = os.path.join(self.scratch, "strace.log")
        tracer = subprocess.Popen(["strace", "-f", "-y", "-e", "trace=fdatasync,fsync", "-o", log_file,
                                   "-p", str(self.env.vmstord_pid)], stderr=subprocess.PIPE, text=True)
        try:
            attached = tracer.stderr.readline()
            self.assertIn("attached", attached, "strace could not attach to vmstord")
            call()
        finally:
            tracer.terminate()
            tracer.wait(timeout=30)
            tracer.stderr.close()
        with open(log_file) as f:
            traced = f.read()
        # A new volume is written unnamed (O_TMPFILE), which the kernel shows as "DIR/#INODE (deleted)".
        names = (f"<{os.path.realpath(path)}>", f"<{os.path.dirname(os.path.realpath(path))}/#")
        return sum(1 for line in traced.splitlines() if any(name in line for name in names))

    def test_convert_with_sync_false_skips_the_final_flush_and_is_still_whole(self):
        source = self.sparse_volume("sync-src.raw", 64 * MiB)
        here = dbus.ObjectPath(pool_path(self.pool_name))
        for fmt in ("raw", "qcow2"):
            flushes = {}
            for sync in (True, False):
                with self.subTest(format=fmt, sync=sync):
                    name = f"sync-{'on' if sync else 'off'}.{fmt}"
                    flushes[sync] = self.flushes_of(self.pool_file(name), lambda: self.assert_completed(
                        self.volume_obj(source).Convert(here, name, sv(format=fmt, sync=sync, wait=True))))
                    if fmt == "qcow2":
                        self.assert_check_clean(self.pool_file(name))
                    self.assert_same_content(self.pool_file("sync-src.raw"), self.pool_file(name), "raw", fmt)
            self.assertGreater(flushes[True], 0, f"{fmt}: the default convert never flushed its target")
            self.assertLess(flushes[False], flushes[True], f"{fmt}: sync=false flushed as often as the default")

    def test_clone_between_raw_and_qcow2_is_identical_and_keeps_holes(self):
        for source_name, fmt, target_format in (("hole-src.qcow2", "qcow2", "raw"),
                                                ("hole-src.raw", "raw", "qcow2")):
            with self.subTest(source=fmt, target=target_format):
                source = self.sparse_volume(source_name, 256 * MiB, fmt=fmt)
                name = f"hole-{fmt}-to.{target_format}"
                self.assert_completed(self.pool(self.pool_name).CloneVolume(
                    source, name, sv(format=target_format, wait=True)))
                made = self.pool_file(name)
                self.assertEqual(self.qemu_img_info(made)["format"], target_format)
                self.assertEqual(self.qemu_img_info(made)["virtual-size"], 256 * MiB)
                self.assert_same_content(self.pool_file(source_name), made, fmt, target_format)
                self.assertLess(allocated(made), 16 * MiB, "holes of the source were filled")
                props = self.properties(volume_path(self.pool_name, name), VOLUME)
                self.assertLess(props["Allocation"], 16 * MiB)
                self.assertEqual(props["Capacity"], 256 * MiB)

    def test_clone_keeps_the_source_format_by_default(self):
        source = self.sparse_volume("default-src.qcow2", 16 * MiB, fmt="qcow2")
        self.assert_completed(self.pool(self.pool_name).CloneVolume(source, "default-dst", sv(wait=True)))
        self.assertEqual(self.qemu_img_info(self.pool_file("default-dst"))["format"], "qcow2")

    def test_wipe_zeroes_the_volume(self):
        source = self.sparse_volume("wipe.raw", 16 * MiB)
        self.assert_completed(self.volume_obj(source).Wipe(sv(algorithm="zero", wait=True)))
        with open(self.pool_file("wipe.raw"), "rb") as f:
            self.assertEqual(f.read(), bytes(16 * MiB))
        self.assertDBusError("InvalidArgument", self.volume_obj(source).Wipe, sv(algorithm="rot13"),
                             mentions=["rot13", "nnsa"])

    def test_wipe_with_a_libvirt_algorithm_overwrites_every_byte(self):
        source = self.sparse_volume("scrub.raw", 8 * MiB)
        path = self.pool_file("scrub.raw")
        with open(path, "rb") as f:
            before = f.read()
        job = self.volume_obj(source).Wipe(sv(algorithm="dod", wait=True), timeout=JOB_TIMEOUT)
        props = self.assert_completed(job)
        self.assertFalse(props["Cancelable"], "libvirt's wipe cannot be stopped half-way")
        self.assertEqual(props["BytesDone"], 8 * MiB)
        with open(path, "rb") as f:
            after = f.read()
        self.assertEqual(len(after), len(before))
        kept = [offset for offset in range(0, len(before), 4096)
                if before[offset:offset + 4096] == after[offset:offset + 4096]]
        self.assertEqual(kept, [], "blocks kept their old content after a dod wipe")
        qcow2 = self.sparse_volume("scrub.qcow2", 8 * MiB, fmt="qcow2")
        self.assertDBusError("NotSupported", self.volume_obj(qcow2).Wipe, sv(algorithm="nnsa"), mentions=["zero"])
        self.assert_check_clean(self.pool_file("scrub.qcow2"))

    # Bad input -------------------------------------------------------------------------------------
    def test_bad_options_are_refused_and_leave_nothing(self):
        source = self.sparse_volume("bad-src.raw", 16 * MiB)
        pool = self.pool(self.pool_name)
        volume = self.volume_obj(source)
        here = dbus.ObjectPath(pool_path(self.pool_name))
        before = self.pool_state()
        jobs_before = self.list_jobs()
        cases = {
            "unknown key": lambda: pool.CloneVolume(source, "bad1", sv(colour="blue")),
            "wrong type": lambda: pool.CloneVolume(source, "bad2", sv(format=dbus.UInt32(2))),
            "wrong type of wait": lambda: pool.CloneVolume(source, "bad2b", sv(wait="yes")),
            "wrong type of sync": lambda: pool.CloneVolume(source, "bad2c", sv(sync=dbus.UInt32(0))),
            "sync on an upload": lambda: volume.Upload(unix_fd("/dev/zero", os.O_RDONLY),
                                                       sv(sync=False, length=dbus.UInt64(MiB))),
            "bad format": lambda: pool.CloneVolume(source, "bad3", sv(format="vmdk")),
            "compress with raw": lambda: volume.Convert(here, "bad4", sv(format="raw", compress=True)),
            "bad compression type": lambda: volume.Convert(here, "bad5", sv(format="qcow2", compress=True,
                                                                             compression_type="lz4")),
            "cluster size not a power of two": lambda: pool.CloneVolume(
                source, "bad6", sv(format="qcow2", cluster_size=dbus.UInt64(3000))),
            "cluster size too big": lambda: pool.CloneVolume(
                source, "bad7", sv(format="qcow2", cluster_size=dbus.UInt64(4 * MiB))),
            "import without a valid format": lambda: pool.ImportVolume(
                "bad8", unix_fd("/dev/null", os.O_RDONLY), sv(format="iso", length=dbus.UInt64(MiB))),
            "download offset past the end": lambda: volume.Download(
                unix_fd("/dev/null", os.O_WRONLY), sv(offset=dbus.UInt64(32 * MiB))),
            "upload offset past the end": lambda: volume.Upload(
                unix_fd("/dev/zero", os.O_RDONLY),
                sv(offset=dbus.UInt64(32 * MiB), length=dbus.UInt64(MiB))),
            "length 0": lambda: volume.Download(unix_fd("/dev/null", os.O_WRONLY),
                                                sv(length=dbus.UInt64(0))),
            "bad name": lambda: pool.CloneVolume(source, "../escape", sv()),
            "rate_limit 0": lambda: pool.CloneVolume(source, "bad9", sv(rate_limit=dbus.UInt64(0))),
            "rate_limit of the wrong type": lambda: volume.Wipe(sv(rate_limit=dbus.UInt32(1))),
        }
        for what, call in cases.items():
            with self.subTest(what):
                self.assertDBusError("InvalidArgument", call)
        self.assertEqual(self.pool_state(), before)
        self.assertEqual(self.list_jobs(), jobs_before, "a refused call made a job")

    def test_a_second_job_on_the_same_file_is_busy(self):
        target = self.pool(self.pool_name).CreateVolume("twice.raw", dbus.UInt64(16 * MiB), sv(format="raw"))
        read_end, write_end = os.pipe()
        try:
            # An upload that waits for a stream nobody writes yet keeps its job running.
            job = str(self.volume_obj(target).Upload(dbus.types.UnixFd(read_end), sv(length=dbus.UInt64(MiB))))
            self.assertEqual(self.job(job)["State"], "running")
            self.assertDBusError("Busy", self.volume_obj(target).Wipe, sv())
            self.assertDBusError("Busy", self.volume_obj(target).Upload,
                                 unix_fd("/dev/zero", os.O_RDONLY), sv(length=dbus.UInt64(MiB)))
        finally:
            os.close(write_end)  # the stream ends early: the upload fails and frees the file
            os.close(read_end)
        self.assertEqual(self.wait_job(job)["State"], "failed")
        self.assert_completed(self.volume_obj(target).Wipe(sv(wait=True)))

    def volume_obj(self, path):
        return self.interface(str(path), VOLUME)


if __name__ == "__main__":
    main()
