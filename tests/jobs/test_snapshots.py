#!/usr/bin/python3
"""Internal snapshots on D-Bus against qemu-img and qemu-io: data written before a snapshot is back after a
revert, byte for byte; snapshots made by qemu-img show up and ours show in qemu-img snapshot -l; a clone of a
snapshot equals it; qemu-img check finds nothing wrong after each step; a lock held by qemu-io makes every
snapshot method Busy; while vmstord writes an image, QEMU cannot open it for writing."""

import os
import time

import dbus

from jobs_harness import JOB, MiB, VOLUME, JobsTest, main, sv, volume_path

SNAPSHOT = "org.vmstor.Storage1.Snapshot"
CAPACITY = 64 * MiB
REFRESH_TIMEOUT = 10.0  # a change made by qemu-img shows within ~3 s; more on a loaded machine


class SnapshotTests(JobsTest):
    pool_name = "snaps"

    def create(self, name, capacity=CAPACITY, fmt="qcow2"):
        path = str(self.pool(self.pool_name).CreateVolume(name, dbus.UInt64(capacity), sv(format=fmt)))
        self.assertEqual(path, volume_path(self.pool_name, name))
        self.wait_object(path, VOLUME)
        return path

    def volume_obj(self, path):
        return self.interface(str(path), VOLUME)

    def snapshot_obj(self, path):
        return self.interface(str(path), SNAPSHOT)

    def snapshots_of(self, volume):
        """{name: (path, properties)} of the snapshot objects under `volume`, from GetManagedObjects."""
        prefix = str(volume) + "/snapshot/"
        return {str(ifaces[SNAPSHOT]["Name"]): (path, ifaces[SNAPSHOT])
                for path, ifaces in self.managed_objects().items()
                if path.startswith(prefix) and SNAPSHOT in ifaces}

    def qemu_snapshot_names(self, name):
        done = self.qemu_img("snapshot", "-U", "-l", self.pool_file(name))
        # Rows after the two header lines: ID, TAG, VM SIZE, DATE, VM CLOCK, ICOUNT.
        return [line.split()[1] for line in done.stdout.splitlines()[2:] if line.strip()]

    def wait_snapshot_names(self, volume, expected):
        deadline = time.monotonic() + REFRESH_TIMEOUT
        while time.monotonic() < deadline:
            if sorted(self.snapshots_of(volume)) == sorted(expected):
                return
            time.sleep(0.2)
        self.assertEqual(sorted(self.snapshots_of(volume)), sorted(expected))

    # Create, revert, delete --------------------------------------------------------------------------
    def test_revert_brings_back_the_data_written_before_the_snapshot(self):
        volume = self.create("revert.qcow2")
        path = self.pool_file("revert.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x11 0 8M")
        self.qemu_io("qcow2", path, "write -P 0x12 40M 3M")
        reference = os.path.join(self.scratch, "revert-before.raw")
        self.qemu_img("convert", "-f", "qcow2", "-O", "raw", path, reference)

        started = time.time()
        snapshot = str(self.volume_obj(volume).CreateSnapshot("before", sv()))
        self.assertEqual(snapshot, str(volume) + "/snapshot/before")
        props = self.properties(snapshot, SNAPSHOT)
        self.assertEqual(props["Name"], "before")
        self.assertEqual(props["Volume"], volume)
        self.assertEqual(props["VirtualSize"], CAPACITY)
        self.assertEqual(props["VMStateSize"], 0)
        self.assertLessEqual(abs(props["Created"] / 1e6 - started), 60, "Created is not the time it was taken")
        self.assertEqual(self.qemu_snapshot_names("revert.qcow2"), ["before"])
        qemu_id = self.qemu_img("snapshot", "-U", "-l", path).stdout.splitlines()[2].split()[0]
        self.assertEqual(props["Id"], qemu_id)
        self.assert_check_clean(path)

        self.qemu_io("qcow2", path, "write -P 0x22 0 8M")
        self.qemu_io("qcow2", path, "write -P 0x23 20M 4M")
        self.qemu_io("qcow2", path, "write -z 40M 1M")
        self.snapshot_obj(snapshot).Revert(sv())
        self.qemu_io("qcow2", path, "read -P 0x11 0 8M")
        self.qemu_io("qcow2", path, "read -P 0 20M 4M")
        self.qemu_io("qcow2", path, "read -P 0x12 40M 3M")
        self.assert_same_content(reference, path, "raw", "qcow2")
        self.assert_check_clean(path)
        self.assertIn(snapshot, self.managed_objects(), "a revert must keep the snapshot")

        self.snapshot_obj(snapshot).Delete(sv())
        self.assertNotIn(snapshot, self.managed_objects())
        self.assertEqual(self.qemu_snapshot_names("revert.qcow2"), [])
        self.assert_check_clean(path)
        self.assert_same_content(reference, path, "raw", "qcow2")

    def test_revert_restores_the_virtual_size_of_the_snapshot(self):
        volume = self.create("resized.qcow2")
        path = self.pool_file("resized.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x31 60M 4M")
        snapshot = str(self.volume_obj(volume).CreateSnapshot("small", sv()))
        self.volume_obj(volume).Resize(dbus.UInt64(2 * CAPACITY), sv())
        self.qemu_io("qcow2", path, "write -P 0x32 100M 4M")
        self.snapshot_obj(snapshot).Revert(sv())
        self.assertEqual(self.qemu_img_info(path)["virtual-size"], CAPACITY)
        self.qemu_io("qcow2", path, "read -P 0x31 60M 4M")
        self.assert_check_clean(path)

    def test_snapshots_of_qemu_img_show_up_and_ours_show_in_qemu_img(self):
        volume = self.create("shared.qcow2")
        path = self.pool_file("shared.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x41 0 1M")
        self.qemu_img("snapshot", "-c", "from-qemu", path)
        self.wait_snapshot_names(volume, ["from-qemu"])
        _, props = self.snapshots_of(volume)["from-qemu"]
        self.assertEqual(props["VirtualSize"], CAPACITY)

        ours = str(self.volume_obj(volume).CreateSnapshot("from-vmstor", sv()))
        self.assertEqual(sorted(self.qemu_snapshot_names("shared.qcow2")), ["from-qemu", "from-vmstor"])
        self.qemu_io("qcow2", path, "write -P 0x42 0 1M")
        # qemu-img reverts to our snapshot, and vmstord reverts to qemu-img's: both see the same data.
        self.qemu_img("snapshot", "-a", "from-vmstor", path)
        self.qemu_io("qcow2", path, "read -P 0x41 0 1M")
        self.qemu_io("qcow2", path, "write -P 0x43 0 1M")
        self.snapshot_obj(self.snapshots_of(volume)["from-qemu"][0]).Revert(sv())
        self.qemu_io("qcow2", path, "read -P 0x41 0 1M")

        self.qemu_img("snapshot", "-d", "from-qemu", path)
        self.wait_snapshot_names(volume, ["from-vmstor"])
        self.assertIn(ours, self.managed_objects())
        self.assert_check_clean(path)

    def test_a_deleted_snapshot_frees_what_only_it_used(self):
        volume = self.create("frees.qcow2")
        path = self.pool_file("frees.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x51 0 16M")
        snapshot = str(self.volume_obj(volume).CreateSnapshot("old", sv()))
        self.qemu_io("qcow2", path, "write -P 0x52 0 16M")  # copy-on-write: 16 MiB more on the host
        with_snapshot = self.assert_check_clean(path)["image-end-offset"]
        self.snapshot_obj(snapshot).Delete(sv())
        result = self.assert_check_clean(path)
        self.assertEqual(result.get("leaks", 0), 0)
        # qemu-img measure of the image's own data: what a rewrite would need. The freed clusters are free
        # in the refcounts: a new snapshot-free write lands in them instead of growing the file.
        self.qemu_io("qcow2", path, "write -P 0x53 32M 8M")
        self.assertLessEqual(self.assert_check_clean(path)["image-end-offset"], with_snapshot)
        self.qemu_io("qcow2", path, "read -P 0x52 0 16M")

    # Clone ----------------------------------------------------------------------------------------
    def test_a_clone_of_a_snapshot_equals_the_snapshot(self):
        volume = self.create("source.qcow2")
        path = self.pool_file("source.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x61 0 4M")
        self.qemu_io("qcow2", path, "write -P 0x62 30M 2M")
        snapshot = str(self.volume_obj(volume).CreateSnapshot("gold", sv()))
        at_snapshot = os.path.join(self.scratch, "gold.raw")
        self.qemu_img("convert", "-f", "qcow2", "-O", "raw", "-l", "gold", path, at_snapshot)
        self.qemu_io("qcow2", path, "write -P 0x63 0 8M")

        job = self.interface(snapshot, SNAPSHOT).CloneTo(dbus.ObjectPath(self.pool_path()), "gold-clone.qcow2",
                                                        sv(wait=True))
        props = self.assert_completed(job)
        self.assertEqual(props["Operation"], "snapshot-clone")
        clone = self.pool_file("gold-clone.qcow2")
        self.wait_object(volume_path(self.pool_name, "gold-clone.qcow2"), VOLUME)
        self.assert_same_content(at_snapshot, clone, "raw", "qcow2")
        self.assert_check_clean(clone)
        self.assertEqual(self.qemu_snapshot_names("gold-clone.qcow2"), [], "a clone is standalone")
        self.assertNotIn("backing-filename", self.qemu_img_info(clone))
        self.qemu_io("qcow2", path, "read -P 0x63 0 8M")  # the source keeps its current data

    def pool_path(self):
        return "/org/vmstor/Storage1/pool/" + self.pool_name

    # Refusals -------------------------------------------------------------------------------------
    def test_bad_requests_are_refused_and_change_nothing(self):
        volume = self.create("refusals.qcow2")
        raw = self.create("refusals.raw", fmt="raw")
        path = self.pool_file("refusals.qcow2")
        self.volume_obj(volume).CreateSnapshot("taken", sv())
        before = self.qemu_img("snapshot", "-U", "-l", path).stdout
        target = self.volume_obj(volume)
        for what, name, error in [("empty", "", "InvalidArgument"), ("slash", "a/b", "InvalidArgument"),
                                  ("dot-dot", "..", "InvalidArgument"), ("too long", "x" * 300, "InvalidArgument"),
                                  ("control", "a\nb", "InvalidArgument"), ("duplicate", "taken", "AlreadyExists")]:
            with self.subTest(what):
                self.assertDBusError(error, target.CreateSnapshot, name, sv())
        self.assertDBusError("InvalidArgument", target.CreateSnapshot, "ok", sv(colour="blue"), mentions=["colour"])
        self.assertDBusError("NotSupported", self.volume_obj(raw).CreateSnapshot, "s1", sv(), mentions=["qcow2"])
        snapshot = self.snapshots_of(volume)["taken"][0]
        self.assertDBusError("InvalidArgument", self.snapshot_obj(snapshot).Revert, sv(force=True))
        self.assertDBusError("InvalidArgument", self.snapshot_obj(snapshot).Delete, sv(force=True))
        self.assertEqual(self.qemu_img("snapshot", "-U", "-l", path).stdout, before)
        self.assertEqual(sorted(self.snapshots_of(volume)), ["taken"])

    def test_revert_of_a_backing_file_is_busy(self):
        base = self.create("base.qcow2")
        snapshot = str(self.volume_obj(base).CreateSnapshot("s", sv()))
        overlay = self.volume_obj(base).CreateOverlay("base-top.qcow2", sv())
        self.wait_object(str(overlay), VOLUME)
        self.assertDBusError("Busy", self.snapshot_obj(snapshot).Revert, sv(), mentions=["base-top.qcow2"])

    def test_a_qemu_writer_makes_every_snapshot_method_busy(self):
        volume = self.create("held.qcow2")
        path = self.pool_file("held.qcow2")
        snapshot = str(self.volume_obj(volume).CreateSnapshot("s", sv()))
        before = self.qemu_img("snapshot", "-U", "-l", path).stdout
        writer = self.start_writer("held.qcow2")
        try:
            self.assertDBusError("Busy", self.volume_obj(volume).CreateSnapshot, "s2", sv())
            self.assertDBusError("Busy", self.snapshot_obj(snapshot).Revert, sv())
            self.assertDBusError("Busy", self.snapshot_obj(snapshot).Delete, sv())
        finally:
            self.stop_writer(writer)
        self.assertEqual(self.qemu_img("snapshot", "-U", "-l", path).stdout, before)
        self.snapshot_obj(snapshot).Delete(sv())
        self.assert_check_clean(path)

    def test_qemu_cannot_write_an_image_while_a_job_writes_it(self):
        volume = self.create("busy.qcow2", 256 * MiB)
        path = self.pool_file("busy.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x71 0 256M")
        job = str(self.volume_obj(volume).Wipe(sv(rate_limit=dbus.UInt64(8 * MiB))))  # lasts ~30 s
        try:
            self.wait_bytes_done(job)
            done = self.qemu_io("qcow2", path, "write -P 0x72 0 4k", check=False)
            self.assertNotEqual(done.returncode, 0, "qemu-io wrote an image a running job was writing")
            self.assertIn("lock", (done.stdout + done.stderr).lower())
            self.assertDBusError("Busy", self.volume_obj(volume).CreateSnapshot, "mid-wipe", sv())
        finally:
            self.interface(job, JOB).Cancel(sv())
            self.wait_job(job)
        self.qemu_io("qcow2", path, "write -P 0x73 0 4k")  # the lock went with the job

    # vmstorctl ------------------------------------------------------------------------------------
    def test_vmstorctl_snapshot_commands(self):
        self.create("ctl.qcow2")
        path = self.pool_file("ctl.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x81 0 2M")
        done = self.vmstorctl("snapshot-create", self.pool_name, "ctl.qcow2", "first")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.qemu_snapshot_names("ctl.qcow2"), ["first"])
        listed = self.vmstorctl("snapshot-list", self.pool_name, "ctl.qcow2")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("first", listed.stdout)
        self.qemu_io("qcow2", path, "write -P 0x82 0 2M")
        done = self.vmstorctl("snapshot-revert", self.pool_name, "ctl.qcow2", "first")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.qemu_io("qcow2", path, "read -P 0x81 0 2M")
        done = self.vmstorctl("snapshot-clone", self.pool_name, "ctl.qcow2", "first", self.pool_name, "ctl-copy.qcow2")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assert_same_content(path, self.pool_file("ctl-copy.qcow2"), "qcow2", "qcow2")
        done = self.vmstorctl("snapshot-delete", self.pool_name, "ctl.qcow2", "first")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.qemu_snapshot_names("ctl.qcow2"), [])
        missing = self.vmstorctl("snapshot-delete", self.pool_name, "ctl.qcow2", "first")
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("first", missing.stderr)


if __name__ == "__main__":
    main()
