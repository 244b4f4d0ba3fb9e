#!/usr/bin/python3
"""Claims of jobs on the files they touch, from the unlucky user's side: a source being copied cannot be
written or deleted, a volume being written cannot be deleted, resized or snapshotted, a pool a job uses
cannot be stopped, undefined or deleted, each refusal Busy naming the job; readers share. Answers stay
true while libvirtd is away or a job's pool vanished. Layers stay consistent: no commit into a base
another overlay shares, no rebase into a loop."""

import os
import time

import dbus

from jobs_harness import JOB, JOB_TIMEOUT, MiB, VOLUME, JobsTest, main, pool_path, pump, sv, unix_fd, volume_path
from harness import MANAGER, ROOT  # noqa: E402 (jobs_harness put tests/integration on sys.path)

SNAPSHOT = "org.vmstor.Storage1.Snapshot"
DATA = 128 * MiB  # the data behind the slow jobs
SLOW = dbus.UInt64(4 * MiB)  # a job over DATA at this rate lasts ~32 s: far longer than the calls made meanwhile
CONNECTION_TIMEOUT = 30.0  # seconds for vmstord to notice libvirtd leaving, or to find it back


class ClaimTests(JobsTest):
    pool_name = "claims"

    def volume_obj(self, path):
        return self.interface(str(path), VOLUME)

    def data_volume(self, name, fmt="raw", pool_dir=None, pool=None):
        """A volume of DATA bytes, every one of them written (so that a copy of it takes a while)."""
        path = os.path.join(pool_dir or self.target, name)
        self.qemu_img("create", "-q", "-f", fmt, path, str(DATA))
        self.qemu_io(fmt, path, f"write -P 0x5a 0 {DATA}")
        os.chown(path, self.account.pw_uid, self.account.pw_gid)
        pool = pool or self.pool_name
        self.pool(pool).Refresh(sv())
        self.wait_object(volume_path(pool, name), VOLUME)
        return dbus.ObjectPath(volume_path(pool, name))

    def overlay(self, backing, name):
        path = self.volume_obj(backing).CreateOverlay(name, sv())
        self.wait_object(str(path), VOLUME)
        return path

    def wait_started(self, job):
        """Waits until the job made progress: it holds its files and is working."""
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline:
            props = self.job(job)
            self.assertEqual(props["State"], "running", f"job {job} ended before the test's calls: {props}")
            if props["BytesDone"] > 0:
                return
            pump(0.1)
        self.fail(f"job {job} made no progress")

    def cancel(self, job):
        self.interface(job, JOB).Cancel(sv())
        self.assertEqual(self.wait_job(job)["State"], "cancelled")

    def assert_busy(self, job, operation, call, *args):
        """Busy, and the message names the job holding the file and what it does."""
        return self.assertDBusError("Busy", call, *args, mentions=[job, operation])

    def snapshot_of(self, volume, name):
        path = str(volume) + "/snapshot/" + name
        self.wait_object(path, SNAPSHOT)
        return self.interface(path, SNAPSHOT)

    def wait_connected(self, expected):
        deadline = time.monotonic() + CONNECTION_TIMEOUT
        while time.monotonic() < deadline:
            if self.properties(ROOT, MANAGER)["Connected"] is expected:
                return
            pump(0.1)
        self.fail(f"Connected did not become {expected} within {CONNECTION_TIMEOUT} s")

    # 1. Every job claims every file it touches ---------------------------------------------------------
    def test_a_copy_claims_its_source_against_writers_and_shares_it_with_readers(self):
        source = self.data_volume("source.raw")
        path = self.pool_file("source.raw")
        pool = dbus.ObjectPath(pool_path(self.pool_name))
        starts = {
            "pool-clone-volume": lambda: self.pool(self.pool_name).CloneVolume(source, "source-clone.raw",
                                                                               sv(rate_limit=SLOW)),
            "volume-convert": lambda: self.volume_obj(source).Convert(pool, "source-convert.qcow2",
                                                                      sv(format="qcow2", rate_limit=SLOW)),
        }
        for operation, start in starts.items():
            with self.subTest(operation):
                job = str(start())
                try:
                    self.wait_started(job)
                    target = self.volume_obj(source)
                    self.assert_busy(job, operation, target.Upload, unix_fd("/dev/zero", os.O_RDONLY),
                                     sv(length=dbus.UInt64(MiB)))
                    self.assert_busy(job, operation, target.Wipe, sv())
                    self.assert_busy(job, operation, target.Delete, sv())
                    self.assert_busy(job, operation, target.Resize, dbus.UInt64(2 * DATA), sv())
                    # QEMU's shared read lock, as qemu-img convert holds it: no VM may write the source.
                    done = self.qemu_io("raw", path, "write -P 0x11 0 4k", check=False)
                    self.assertNotEqual(done.returncode, 0, "qemu-io wrote a source being copied")
                    self.assertIn("lock", (done.stdout + done.stderr).lower())
                    # Readers share: another copy of the same source starts beside it.
                    second = str(self.pool(self.pool_name).CloneVolume(source, "source-second.raw",
                                                                       sv(rate_limit=SLOW)))
                    self.assertEqual(self.job(second)["State"], "running")
                    self.cancel(second)
                    copy = os.path.join(self.scratch, "source.downloaded")
                    self.assert_completed(target.Download(unix_fd(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                                          sv(wait=True), timeout=JOB_TIMEOUT))
                    self.assertEqual(os.path.getsize(copy), DATA)
                    os.unlink(copy)
                finally:
                    self.cancel(job)
                self.assertTrue(os.path.exists(path))
                self.assertEqual(self.qemu_img_info(path)["virtual-size"], DATA)
        # Once the copies ended, the source is free again.
        self.assert_completed(self.volume_obj(source).Wipe(sv(wait=True)))

    def test_a_volume_being_written_cannot_be_deleted_resized_or_snapshotted(self):
        volume = self.data_volume("written.qcow2", fmt="qcow2")
        path = self.pool_file("written.qcow2")
        self.volume_obj(volume).CreateSnapshot("before", sv())
        snapshot = self.snapshot_of(volume, "before")
        target = self.volume_obj(volume)

        def refused_while(job, operation):
            self.assert_busy(job, operation, target.Delete, sv())
            self.assert_busy(job, operation, target.Resize, dbus.UInt64(2 * DATA), sv())
            self.assert_busy(job, operation, target.CreateSnapshot, "during", sv())
            self.assert_busy(job, operation, snapshot.Revert, sv())
            self.assert_busy(job, operation, snapshot.Delete, sv())

        with self.subTest("volume-wipe"):
            job = str(target.Wipe(sv(rate_limit=SLOW)))
            try:
                self.wait_started(job)
                refused_while(job, "volume-wipe")
            finally:
                self.cancel(job)
        with self.subTest("volume-upload"):
            read_end, write_end = os.pipe()
            try:
                # An upload that waits for a stream nobody writes yet keeps its job running.
                job = str(target.Upload(dbus.types.UnixFd(read_end), sv(length=dbus.UInt64(MiB))))
                self.assertEqual(self.job(job)["State"], "running")
                refused_while(job, "volume-upload")
            finally:
                os.close(write_end)  # the stream ends early: the upload fails and frees the file
                os.close(read_end)
            self.assertEqual(self.wait_job(job)["State"], "failed")
        self.assertTrue(os.path.exists(path))
        self.assertEqual(self.qemu_img_info(path)["virtual-size"], DATA)
        self.assertIn("before", self.qemu_img("snapshot", "-U", "-l", path).stdout)
        self.assertNotIn("during", self.qemu_img("snapshot", "-U", "-l", path).stdout)

    def test_commit_and_rebase_claim_every_layer_they_write(self):
        base = self.data_volume("cr-base.qcow2", fmt="qcow2")
        top = self.overlay(base, "cr-top.qcow2")
        self.qemu_io("qcow2", self.pool_file("cr-top.qcow2"), f"write -P 0x6b 0 {DATA}")
        other = self.data_volume("cr-other.qcow2", fmt="qcow2")
        starts = {
            "volume-commit": lambda: self.volume_obj(top).Commit(sv(rate_limit=SLOW)),
            "volume-rebase": lambda: self.volume_obj(top).Rebase(str(other), sv(rate_limit=SLOW)),
        }
        for operation, start in starts.items():
            with self.subTest(operation):
                job = str(start())
                try:
                    self.wait_started(job)
                    self.assert_busy(job, operation, self.volume_obj(top).Delete, sv())
                    self.assert_busy(job, operation, self.volume_obj(top).Resize, dbus.UInt64(2 * DATA), sv())
                    self.assert_busy(job, operation, self.volume_obj(top).CreateSnapshot, "during", sv())
                finally:
                    self.cancel(job)
                self.assertTrue(os.path.exists(self.pool_file("cr-top.qcow2")))

    def test_a_pool_a_job_uses_cannot_be_stopped_undefined_or_deleted(self):
        target = self.create_pool("claims-other")
        theirs = self.data_volume("theirs.raw", pool_dir=target, pool="claims-other")
        ours = self.data_volume("ours.raw")
        other = self.pool("claims-other")
        starts = {
            # Reads from the pool.
            "pool-clone-volume": lambda: self.pool(self.pool_name).CloneVolume(theirs, "from-other.raw",
                                                                               sv(rate_limit=SLOW)),
            # Makes a new volume in it.
            "volume-convert": lambda: self.volume_obj(ours).Convert(dbus.ObjectPath(pool_path("claims-other")),
                                                                    "into-other.raw", sv(rate_limit=SLOW)),
            # Writes a volume of it.
            "volume-wipe": lambda: self.volume_obj(theirs).Wipe(sv(rate_limit=SLOW)),
        }
        for operation, start in starts.items():
            with self.subTest(operation):
                job = str(start())
                try:
                    self.wait_started(job)
                    self.assert_busy(job, operation, other.Stop, sv())
                    self.assert_busy(job, operation, other.Undefine, sv())
                    self.assert_busy(job, operation, other.Delete, sv())
                    self.assertIn("claims-other", self.virsh_pools())
                    self.assertEqual(self.virsh_pool_info("claims-other").get("State"), "running")
                finally:
                    self.cancel(job)
        other.Stop(sv())  # free once no job uses it
        other.Undefine(sv())

    # 4. Answers stay true while libvirtd is away -------------------------------------------------------
    def test_a_snapshot_made_while_libvirtd_is_away_is_answered_as_made(self):
        volume = self.data_volume("offline.qcow2", fmt="qcow2")
        path = self.pool_file("offline.qcow2")
        self.env.stop_libvirtd()
        try:
            self.wait_connected(False)
            answer = str(self.volume_obj(volume).CreateSnapshot("offline", sv()))
            self.assertEqual(answer, str(volume) + "/snapshot/offline")
            self.assertIn("offline", self.qemu_img("snapshot", "-U", "-l", path).stdout)
            self.wait_object(answer, SNAPSHOT)
            self.assertDBusError("AlreadyExists", self.volume_obj(volume).CreateSnapshot, "offline", sv())
        finally:
            self.env.start_libvirtd()
            self.wait_connected(True)
        self.assertIn("offline", self.qemu_img("snapshot", "-U", "-l", path).stdout)

    def test_a_job_whose_pool_vanished_meanwhile_does_not_report_success(self):
        target = self.create_pool("claims-gone")
        source = self.data_volume("gone-source.raw")
        outcome = {}
        jobs_before = set(self.list_jobs())
        # wait: the call's answer is the job's end.
        self.volume_obj(source).Convert(dbus.ObjectPath(pool_path("claims-gone")), "gone-copy.raw",
                                        sv(rate_limit=SLOW, wait=True),
                                        reply_handler=lambda job: outcome.update(job=str(job)),
                                        error_handler=lambda e: outcome.update(error=e), timeout=JOB_TIMEOUT)
        deadline = time.monotonic() + 30
        while not set(self.list_jobs()) - jobs_before and time.monotonic() < deadline:
            pump(0.1)
        [job] = set(self.list_jobs()) - jobs_before
        self.wait_started(job)
        # Behind vmstord's back (vmstord itself refuses while the job runs).
        self.virsh("pool-destroy", "claims-gone")
        self.virsh("pool-undefine", "claims-gone")
        self.assertFalse(outcome, "the job ended before its pool went: the test proves nothing")
        deadline = time.monotonic() + JOB_TIMEOUT
        while not outcome and time.monotonic() < deadline:
            pump(0.1)
        self.assertIn("error", outcome, f"a copy into a pool that no longer exists reported success: {outcome}")
        message = outcome["error"].get_dbus_message()
        self.assertIn("claims-gone", message)
        self.assertNotIn(pool_path("claims-gone"), self.managed_objects())
        self.assertTrue(os.path.isdir(target))

    # 5. Layers stay consistent -------------------------------------------------------------------------
    def test_commit_into_a_base_another_overlay_shares_is_busy(self):
        base = self.data_volume("sh-base.qcow2", fmt="qcow2")
        top1 = self.overlay(base, "sh-top1.qcow2")
        top2 = self.overlay(base, "sh-top2.qcow2")
        self.overlay(top1, "sh-top1-child.qcow2")  # sees the base through top1: unchanged by the commit
        self.qemu_io("qcow2", self.pool_file("sh-top1.qcow2"), "write -P 0x77 0 4M")
        view2 = os.path.join(self.scratch, "sh-top2.view.raw")
        self.qemu_img("convert", "-U", "-f", "qcow2", "-O", "raw", self.pool_file("sh-top2.qcow2"), view2)

        jobs_before = self.list_jobs()
        self.assertDBusError("Busy", self.volume_obj(top1).Commit, sv(), mentions=["sh-top2.qcow2"])
        self.assert_same_content(view2, self.pool_file("sh-top2.qcow2"), "raw", "qcow2")
        self.assertEqual(self.list_jobs(), jobs_before, "a refused Commit made a job")

        self.volume_obj(top2).Delete(sv())
        self.assert_completed(self.volume_obj(top1).Commit(sv(wait=True), timeout=JOB_TIMEOUT))
        self.qemu_io("qcow2", self.pool_file("sh-base.qcow2"), "read -P 0x77 0 4M")

    def test_rebase_into_a_loop_is_invalid(self):
        base = self.data_volume("loop-base.qcow2", fmt="qcow2")
        top = self.overlay(base, "loop-top.qcow2")
        child = self.overlay(top, "loop-child.qcow2")
        jobs_before = self.list_jobs()
        cases = {
            "onto its own overlay, unsafe": (str(top), dict(unsafe=True)),
            "onto its own overlay": (str(top), {}),
            "onto an overlay of its overlay": (str(child), {}),
            "onto its overlay's file": (self.pool_file("loop-top.qcow2"), dict(backing_format="qcow2", unsafe=True)),
            "onto itself": (str(base), dict(unsafe=True)),
        }
        for what, (backing, options) in cases.items():
            with self.subTest(what):
                self.assertDBusError("InvalidArgument", self.volume_obj(base).Rebase, backing, sv(options))
        self.assertNotIn("backing-filename", self.qemu_img_info(self.pool_file("loop-base.qcow2")))
        self.qemu_img("info", "-U", "--backing-chain", self.pool_file("loop-child.qcow2"))
        self.assertEqual(self.list_jobs(), jobs_before, "a refused Rebase made a job")


if __name__ == "__main__":
    main()
