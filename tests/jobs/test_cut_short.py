#!/usr/bin/python3
"""A copy cut short never looks complete: vmstord is killed (SIGKILL, as the OOM killer or a power cut
would stop it) at several points of every job that fills a new volume (CloneVolume raw to qcow2,
Volume.Convert, ImportVolume, Snapshot.CloneTo, and a CloneVolume into a disk pool, whose volumes are
partitions that libvirt makes), then started again. After a refresh no partial volume is listed on D-Bus
or by virsh, the pool directory holds exactly the entries it held before, the earlier volumes are intact,
and the name the job was making is free again. While a job runs, its name is claimed.

The disk pool needs what test_block_volumes.py needs: root, a loop device, a libvirtd with CAP_SYS_ADMIN
and CAP_DAC_OVERRIDE, and vmstord as root.
"""

import hashlib
import os
import signal
import subprocess
import time

import dbus

from jobs_harness import (JOB, MiB, VOLUME, JobsTest, main, pool_path, pump, sv, volume_path,  # noqa: F401
                          write_random_file)
from harness import VMSTORD  # noqa: E402 (jobs_harness put tests/integration on sys.path)

SIZE = 48 * MiB
RATE = dbus.UInt64(SIZE // 3)  # every job lasts 3 s: time enough to kill it where the test wants
KILL_POINTS = (0.0, 0.3, 0.8)  # fractions of the job's bytes done when vmstord is killed
DISK_SIZE = 128 * MiB
SNAPSHOT = "org.vmstor.Storage1.Snapshot"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


class CutShortTest(JobsTest):
    pool_name = "files"
    disk_pool = "disk"
    libvirtd_capabilities = ("sys_admin", "dac_override")
    vmstord_as_root = True

    @classmethod
    def setUpEnvironment(cls):
        if os.geteuid() != 0:
            raise AssertionError("this test makes a loop device and needs root")
        super().setUpEnvironment()
        cls.random_raw = os.path.join(cls.scratch, "random.raw")
        write_random_file(cls.random_raw, SIZE, block=8 * MiB)
        cls.disk_file = os.path.join(cls.scratch, "disk.img")
        with open(cls.disk_file, "wb") as f:
            f.truncate(DISK_SIZE)
        cls.loop = subprocess.run(["losetup", "--find", "--show", "--partscan", cls.disk_file],
                                  capture_output=True, text=True, check=True).stdout.strip()
        cls.addClassCleanup(lambda: subprocess.run(["losetup", "--detach", cls.loop], check=False))
        # As in test_block_volumes.py: a disk named "loopNp" gives partitions libvirt names "loopNpM".
        name = os.path.basename(cls.loop)
        cls.dev_dir = cls.env.path("dev")
        os.makedirs(cls.dev_dir)
        os.symlink(cls.loop, os.path.join(cls.dev_dir, name + "p"))
        for n in range(1, 17):
            os.symlink(f"{cls.loop}p{n}", os.path.join(cls.dev_dir, f"{name}p{n}"))
        cls.partition_prefix = name + "p"
        cls.manager().CreatePool(cls.disk_pool, "disk",
                                 sv({"source.device": dbus.Array([os.path.join(cls.dev_dir, name + "p")],
                                                                  signature="s"),
                                     "source.format": "gpt", "target.path": cls.dev_dir}), sv())

    # Helpers ------------------------------------------------------------------------------------
    def raw_volume(self, name):
        with open(self.random_raw, "rb") as src, open(self.pool_file(name), "wb") as dst:
            dst.write(src.read())
        return self.give_to_pool(name)

    def dbus_volumes(self, pool):
        prefix = pool_path(pool) + "/volume/"
        return sorted(p for p, ifaces in self.managed_objects().items() if VOLUME in ifaces and p.startswith(prefix))

    def snapshot_of_pools(self):
        """What a killed job must leave as it was: directory entries, virsh's and D-Bus's volume lists of
        both pools, and the checksum of every file in the pool directory."""
        self.pool(self.pool_name).Refresh(sv())
        self.pool(self.disk_pool).Refresh(sv())
        files = sorted(os.listdir(self.target))
        sums = {name: sha256(self.pool_file(name)) for name in files}
        return {"entries": files, "sums": sums,
                "virsh": self.virsh_volumes(self.pool_name), "dbus": self.dbus_volumes(self.pool_name),
                "partitions": self.virsh_volumes(self.disk_pool), "disk dbus": self.dbus_volumes(self.disk_pool)}

    def wait_progress(self, job, fraction):
        """Waits until the running job has done `fraction` of its bytes (0: it runs)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            props = self.job(job)
            self.assertEqual(props["State"], "running", f"the job ended before it was killed: {props}")
            if props["Bytes"] and props["BytesDone"] >= fraction * props["Bytes"]:
                return props
            pump(0.02)
        self.fail(f"job {job} did not reach {fraction:.0%} of its bytes within 30 s")

    def kill_and_restart(self):
        # Killed on purpose: this is the crash under test (the teardown's check applies to the new vmstord).
        self.assertEqual(self.env.end_vmstord(signal.SIGKILL), -signal.SIGKILL)
        self.env.start_vmstord(VMSTORD)  # returns once vmstord serves the bus again

    def assert_cut_short_leaves_nothing(self, pool, name, start, before):
        for fraction in KILL_POINTS:
            with self.subTest(point=f"{fraction:.0%}"):
                job = start()
                self.wait_progress(job, fraction)
                self.kill_and_restart()
                after = self.snapshot_of_pools()
                self.assertEqual(after, before, f"killed at {fraction:.0%} of the job")
                self.assertNotIn(volume_path(pool, name), self.managed_objects())
                # The name is free again: a new volume can take it.
                if pool == self.pool_name:
                    made = self.pool(pool).CreateVolume(name, dbus.UInt64(MiB), sv(format="raw"))
                    self.interface(made, VOLUME).Delete(sv())
                self.assertEqual(self.snapshot_of_pools(), before)

    # Tests --------------------------------------------------------------------------------------
    def test_killed_clone_raw_to_qcow2_leaves_nothing_and_its_name_was_claimed(self):
        source = self.raw_volume("clone-src.raw")
        before = self.snapshot_of_pools()
        pool = self.pool(self.pool_name)

        def start():  # a new proxy each time: the old one is bound to the killed vmstord's bus name
            return self.pool(self.pool_name).CloneVolume(source, "clone-dst.qcow2",
                                                         sv(format="qcow2", rate_limit=RATE))

        job = start()
        self.wait_progress(job, 0.1)
        # The job's name is claimed while it runs, though no file of that name exists yet.
        self.assertDBusError("Busy", pool.CreateVolume, "clone-dst.qcow2", dbus.UInt64(MiB), sv(),
                             mentions=("clone-dst.qcow2", str(job)))
        self.assertDBusError("Busy", pool.CloneVolume, source, "clone-dst.qcow2", sv(),
                             mentions=("clone-dst.qcow2", str(job)))
        self.kill_and_restart()
        self.assertEqual(self.snapshot_of_pools(), before)
        self.assert_cut_short_leaves_nothing(self.pool_name, "clone-dst.qcow2", start, before)

    def test_killed_convert_leaves_nothing(self):
        source = self.raw_volume("conv-src.raw")
        path = self.pool_file("conv-src.qcow2")
        self.qemu_img("convert", "-f", "raw", "-O", "qcow2", self.pool_file("conv-src.raw"), path)
        qcow2 = self.give_to_pool("conv-src.qcow2")
        del source
        before = self.snapshot_of_pools()
        here = dbus.ObjectPath(pool_path(self.pool_name))
        self.assert_cut_short_leaves_nothing(
            self.pool_name, "conv-dst.raw",
            lambda: self.interface(qcow2, VOLUME).Convert(here, "conv-dst.raw", sv(format="raw", rate_limit=RATE)),
            before)
        self.assert_check_clean(path)

    def test_killed_import_leaves_nothing(self):
        before = self.snapshot_of_pools()

        def start():
            with open(self.random_raw, "rb") as f:
                return self.pool(self.pool_name).ImportVolume("imported.qcow2", dbus.types.UnixFd(f.fileno()),
                                                              sv(format="qcow2", rate_limit=RATE))

        self.assert_cut_short_leaves_nothing(self.pool_name, "imported.qcow2", start, before)

    def test_killed_snapshot_clone_leaves_nothing(self):
        path = self.pool_file("snap-src.qcow2")
        self.qemu_img("convert", "-f", "raw", "-O", "qcow2", self.random_raw, path)
        self.qemu_img("snapshot", "-c", "s1", path)
        self.qemu_io("qcow2", path, "write -P 0x5a 0 1M")  # the active state differs from s1
        volume = self.give_to_pool("snap-src.qcow2")
        snapshot = volume_path(self.pool_name, "snap-src.qcow2") + "/snapshot/s1"
        self.wait_object(snapshot, SNAPSHOT)
        del volume
        before = self.snapshot_of_pools()
        here = dbus.ObjectPath(pool_path(self.pool_name))
        self.assert_cut_short_leaves_nothing(
            self.pool_name, "from-s1.qcow2",
            lambda: self.interface(snapshot, SNAPSHOT).CloneTo(here, "from-s1.qcow2",
                                                                sv(format="qcow2", rate_limit=RATE)),
            before)
        self.assert_check_clean(path)

    def test_killed_clone_into_a_disk_pool_has_its_partition_deleted_at_the_next_start(self):
        source = self.raw_volume("to-disk.raw")
        before = self.snapshot_of_pools()
        name = self.partition_prefix + "1"  # the disk has no partition: libvirt takes number 1
        self.assertEqual(before["partitions"], [])
        log_before = len(self.env.vmstord_log())
        self.assert_cut_short_leaves_nothing(
            self.disk_pool, name,
            lambda: self.pool(self.disk_pool).CloneVolume(source, name, sv(rate_limit=RATE)), before)
        log = self.env.vmstord_log()[log_before:]
        deleted = [line for line in log.splitlines() if "deleted volume" in line and f"'{name}'" in line]
        self.assertEqual(len(deleted), len(KILL_POINTS), f"each deletion is logged once:\n{log[-3000:]}")
        self.assertTrue(all("pool-clone-volume" in line for line in deleted), deleted)
        records = os.path.join(self.env.vmstord_state_dir, "jobs")
        self.assertEqual([f for f in os.listdir(records) if f.endswith(".json")], [],
                         "a job record outlived the clean-up")

    def test_a_name_made_by_hand_meanwhile_fails_the_job_and_is_kept(self):
        source = self.raw_volume("race-src.raw")
        completed = []
        watch = self.bus.add_signal_receiver(
            lambda ok, name, message, path=None: completed.append((str(path), bool(ok), str(name), str(message))),
            "Completed", JOB, None, None, path_keyword="path")
        try:
            job = str(self.pool(self.pool_name).CloneVolume(source, "race.raw", sv(rate_limit=RATE)))
            self.wait_progress(job, 0.1)
            # Someone else takes the name while the job runs: the job must not replace that file.
            fd = os.open(self.pool_file("race.raw"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"made by hand\n")
            os.close(fd)
            props = self.wait_job(job, timeout=30)
            deadline = time.monotonic() + 5
            while not any(c[0] == job for c in completed) and time.monotonic() < deadline:
                pump(0.05)
        finally:
            watch.remove()
        self.assertEqual(props["State"], "failed", props)
        ends = [c for c in completed if c[0] == job]
        self.assertEqual(len(ends), 1, f"no Completed signal for {job}: {completed}")
        self.assertEqual(ends[0][2], "org.vmstor.Storage1.Error.AlreadyExists", ends[0])
        self.assertIn("race.raw", ends[0][3])
        with open(self.pool_file("race.raw"), "rb") as f:
            self.assertEqual(f.read(), b"made by hand\n")
        os.unlink(self.pool_file("race.raw"))
        self.pool(self.pool_name).Refresh(sv())

if __name__ == "__main__":
    main()
