#!/usr/bin/python3
"""The daemon's jobs on a full disk: a dir pool on a small loop-mounted ext4. A CloneVolume, Convert,
ImportVolume or Upload that runs out of space fails with NoSpace and a message that says the disk is
full; a new volume leaves no file behind (the directory holds what it held, the space is free again),
the source stays intact, a qcow2 volume uploaded into checks without corruption, and the daemon keeps
answering. Needs root (mount)."""

import os
import subprocess

import dbus

from jobs_harness import (MiB, VOLUME, JobsTest, main, pool_path, sv, unix_fd,  # noqa: F401
                          volume_path, write_random_file)

FS_SIZE = 24 * MiB
SOURCE_SIZE = 40 * MiB  # more than the small file system holds


class FullDiskTest(JobsTest):
    pool_name = "big"
    small_pool = "small"

    @classmethod
    def setUpEnvironment(cls):
        if os.geteuid() != 0:
            raise AssertionError("this test mounts a loop file system and needs root")
        super().setUpEnvironment()
        image = os.path.join(cls.scratch, "small.ext4")
        with open(image, "wb") as f:
            f.truncate(FS_SIZE)
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
        cls.small_dir = cls.env.path("small")
        os.makedirs(cls.small_dir)
        subprocess.run(["mount", "-o", "loop", image, cls.small_dir], check=True)
        cls.addClassCleanup(lambda: subprocess.run(["umount", cls.small_dir], check=False))
        os.chown(cls.small_dir, cls.account.pw_uid, cls.account.pw_gid)
        cls.manager().CreatePool(cls.small_pool, "dir", sv({"target.path": cls.small_dir}), sv(build=False))
        cls.source_file = os.path.join(cls.scratch, "random.raw")
        write_random_file(cls.source_file, SOURCE_SIZE, block=8 * MiB)

    def setUp(self):
        super().setUp()
        self.small = self.pool(self.small_pool)
        self.here = dbus.ObjectPath(pool_path(self.small_pool))

    def source(self, name):
        with open(self.source_file, "rb") as src, open(self.pool_file(name), "wb") as dst:
            dst.write(src.read())
        return self.give_to_pool(name)

    def small_state(self):
        self.small.Refresh(sv())
        st = os.statvfs(self.small_dir)
        tree = sorted(p for p, ifaces in self.managed_objects().items()
                      if VOLUME in ifaces and p.startswith(pool_path(self.small_pool) + "/"))
        return sorted(os.listdir(self.small_dir)), self.virsh_volumes(self.small_pool), tree, st.f_bfree

    def assert_fails_full(self, call):
        """The job started by `call` (with wait) fails with NoSpace saying that the disk is full."""
        message = self.assertDBusError("NoSpace", call)
        self.assertIn("disk is full", message)
        return message

    def assert_daemon_answers(self):
        self.assertEqual(self.properties(pool_path(self.small_pool), "org.vmstor.Storage1.Pool")["Name"],
                         self.small_pool)

    def test_clone_convert_and_import_into_a_full_disk_fail_and_leave_nothing(self):
        source = self.source("clone-src.raw")
        before = self.small_state()
        cases = {
            "clone": lambda: self.small.CloneVolume(source, "clone.raw", sv(wait=True)),
            "convert": lambda: self.interface(source, VOLUME).Convert(self.here, "conv.qcow2",
                                                                      sv(format="qcow2", wait=True)),
            "import": lambda: self.small.ImportVolume("import.qcow2", unix_fd(self.source_file, os.O_RDONLY),
                                                      sv(wait=True)),
        }
        for what, call in cases.items():
            with self.subTest(what):
                message = self.assert_fails_full(call)
                self.assertNotIn("/proc/", message, "the message names a descriptor, not the volume")
                self.assertEqual(self.small_state(), before, f"{what} left something on the full disk")
                self.assert_daemon_answers()
        with open(self.source_file, "rb") as a, open(self.pool_file("clone-src.raw"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "the source changed")

    def test_upload_into_a_qcow2_volume_on_a_full_disk_fails_and_the_volume_checks_clean(self):
        volume = self.small.CreateVolume("up.qcow2", dbus.UInt64(SOURCE_SIZE), sv(format="qcow2"))
        path = os.path.join(self.small_dir, "up.qcow2")
        self.assert_fails_full(lambda: self.interface(volume, VOLUME).Upload(
            unix_fd(self.source_file, os.O_RDONLY), sv(wait=True)))
        result = self.qemu_img("check", "-U", "--output=json", "-f", "qcow2", path, check=False)
        # Leaked clusters are allowed after a failed write (qemu-img check exits 3 for them), nothing else.
        self.assertIn(result.returncode, (0, 3), f"qemu-img check: {result.stdout}{result.stderr}")
        self.assertNotIn('"corruptions":', result.stdout.replace('"corruptions": 0', ""), result.stdout)
        self.assertIn(volume_path(self.small_pool, "up.qcow2"), self.managed_objects())
        self.assert_daemon_answers()
        self.interface(volume, VOLUME).Delete(sv())


if __name__ == "__main__":
    main()
