"""Volumes of a pool without a directory: a libvirt disk pool on a partitioned loop device, whose
volumes are partitions. CloneVolume, Convert and ImportVolume into it have libvirt make the partition,
then vmstord writes raw data into the device and zeroes the rest (a new partition holds whatever an old
one left there); a failed or cancelled job has libvirt delete the partition again. Upload, Download and
clones out of the pool read and write the device.

A session libvirtd may not repartition a disk: this one gets the two capabilities a system libvirtd uses
for it (CAP_SYS_ADMIN to tell the kernel about new partitions, CAP_DAC_OVERRIDE for the partition nodes,
which no udev hands to a group here), and vmstord runs as root, as it does in production. Both need this
test to run as root, which makes the loop device.
"""

import os
import subprocess

import dbus

from jobs_harness import (GiB, JOB, JobsTest, MiB, VOLUME, main, pool_path, pump, sv, unix_fd,  # noqa: F401
                          volume_path, write_pattern_file, write_random_file)

DISK_SIZE = 192 * MiB
OLD_DATA = 0xAA  # what the disk holds before any partition is made: must never show through


class BlockVolumesTest(JobsTest):
    pool_name = "files"
    disk_pool = "disk"
    libvirtd_capabilities = ("sys_admin", "dac_override")
    vmstord_as_root = True

    @classmethod
    def setUpEnvironment(cls):
        if os.geteuid() != 0:
            raise AssertionError("this test makes a loop device and needs root")
        super().setUpEnvironment()
        cls.disk_file = os.path.join(cls.scratch, "disk.img")
        with open(cls.disk_file, "wb") as f:
            block = bytes([OLD_DATA]) * MiB
            for _ in range(DISK_SIZE // MiB):
                f.write(block)
        cls.loop = subprocess.run(["losetup", "--find", "--show", "--partscan", cls.disk_file],
                                  capture_output=True, text=True, check=True).stdout.strip()
        cls.addClassCleanup(cls.detach_loop)
        name = os.path.basename(cls.loop)
        # libvirt 9 names a partition by cutting the disk's name off the partition's (loop0p2 -> "p2"),
        # which parted does not take: a disk named "loop0p" (a link, like udev's /dev/disk/by-* ones)
        # gives "2". The partitions get links of the same shape; they dangle until the partition exists.
        cls.dev_dir = cls.env.path("dev")
        os.makedirs(cls.dev_dir)
        cls.disk_link = os.path.join(cls.dev_dir, name + "p")
        os.symlink(cls.loop, cls.disk_link)
        for n in range(1, 17):
            os.symlink(f"{cls.loop}p{n}", os.path.join(cls.dev_dir, f"{name}p{n}"))
        cls.partition_prefix = name + "p"
        cls.manager().CreatePool(cls.disk_pool, "disk",
                                 sv({"source.device": dbus.Array([cls.disk_link], signature="s"),
                                     "source.format": "gpt", "target.path": cls.dev_dir}), sv())

    @classmethod
    def detach_loop(cls):
        subprocess.run(["losetup", "--detach", cls.loop], check=False)

    # Partitions ---------------------------------------------------------------------------------
    def partitions(self):
        return sorted(self.virsh_volumes(self.disk_pool))

    def next_partition(self):
        """The name libvirt takes for the next partition: the lowest number not in use (GPT)."""
        used = {int(name[len(self.partition_prefix):]) for name in self.partitions()}
        return self.partition_prefix + str(min(n for n in range(1, 18) if n not in used))

    def device_of(self, name):
        return str(self.properties(volume_path(self.disk_pool, name), VOLUME)["Path"])

    def delete_partition(self, name):
        self.volume(self.disk_pool, name).Delete(sv())
        self.assertNotIn(name, self.partitions())

    def assert_zero_from(self, device, offset):
        size = int(subprocess.run(["blockdev", "--getsize64", device], capture_output=True, text=True,
                                  check=True).stdout)
        if size > offset:
            self.qemu_io("raw", device, f"read -P 0 {offset} {size - offset}")

    def source_qcow2(self, name, size=24 * MiB):
        """A qcow2 volume of the dir pool with data, a zeroed range and holes."""
        path = self.pool_file(name)
        self.qemu_img("create", "-q", "-f", "qcow2", path, str(size))
        self.qemu_io("qcow2", path, "write -P 0x11 0 1M")
        self.qemu_io("qcow2", path, "write -z 4M 2M")
        self.qemu_io("qcow2", path, f"write -P 0x22 {size - 64 * 1024} 64k")
        return self.give_to_pool(name), path

    # Tests --------------------------------------------------------------------------------------
    def test_volumes_of_the_disk_pool_are_partitions_read_as_raw(self):
        name = self.next_partition()
        self.pool(self.disk_pool).CreateVolume(name, dbus.UInt64(8 * MiB), sv())  # raw by default here
        props = self.properties(volume_path(self.disk_pool, name), VOLUME)
        self.assertTrue(props["Path"].startswith("/dev/"), props)
        self.assertGreaterEqual(props["Capacity"], 8 * MiB)
        info = self.volume(self.disk_pool, name).Info(sv())
        self.assertIn('"format": "raw"', info)
        self.assertDBusError("NotSupported", self.pool(self.disk_pool).CreateVolume,
                             self.next_partition(), dbus.UInt64(8 * MiB), sv(format="qcow2"),
                             mentions=("raw",))
        self.delete_partition(name)

    def test_clone_into_the_disk_pool_writes_the_partition_and_zeroes_the_rest(self):
        source, path = self.source_qcow2("to-disk.qcow2")
        name = self.next_partition()
        job = self.pool(self.disk_pool).CloneVolume(source, name, sv(wait=True))
        props = self.assert_completed(job)
        self.assertEqual(props["BytesDone"], props["Bytes"])
        device = self.device_of(name)
        # Identical, and zero past the source's end up to the partition's: no old data shows through.
        self.assert_same_content(path, device, "qcow2", "raw")
        self.assert_zero_from(device, 24 * MiB)
        self.assertIn(volume_path(self.disk_pool, name), self.managed_objects())

        # And back out of the partition into a qcow2 file of the dir pool.
        out = self.volume(self.disk_pool, name).Convert(dbus.ObjectPath(pool_path(self.pool_name)),
                                                         "from-disk.qcow2", sv(format="qcow2", wait=True))
        self.assert_completed(out)
        self.assert_check_clean(self.pool_file("from-disk.qcow2"))
        self.assert_same_content(device, self.pool_file("from-disk.qcow2"), "raw", "qcow2")
        self.delete_partition(name)

    def test_a_qcow2_target_in_the_disk_pool_is_refused_and_makes_no_partition(self):
        source, _ = self.source_qcow2("refused.qcow2")
        before = self.partitions()
        self.assertDBusError("NotSupported", self.pool(self.disk_pool).CloneVolume,
                             source, self.next_partition(), sv(format="qcow2"), mentions=("raw",))
        self.assertDBusError("NotSupported",
                             self.interface(source, VOLUME).Convert, dbus.ObjectPath(pool_path(self.disk_pool)),
                             self.next_partition(), sv(format="qcow2", compress=True), mentions=("raw",))
        self.assertEqual(self.partitions(), before)

    def test_a_name_libvirt_does_not_take_is_refused_and_makes_no_partition(self):
        source, _ = self.source_qcow2("badname.qcow2")
        before = self.partitions()
        with self.assertRaises(dbus.exceptions.DBusException) as refused:
            self.pool(self.disk_pool).CloneVolume(source, "not-a-partition", sv())
        self.assertIn("not-a-partition", refused.exception.get_dbus_message())
        self.assertEqual(self.partitions(), before)

    def test_cancelled_clone_into_the_disk_pool_deletes_its_partition(self):
        big = os.path.join(self.scratch, "big.raw")
        write_random_file(big, 96 * MiB)
        os.chown(big, self.account.pw_uid, self.account.pw_gid)
        os.rename(big, self.pool_file("big.raw"))
        source = self.give_to_pool("big.raw")
        before = self.partitions()
        name = self.next_partition()
        # 96 MiB at 3 MiB/s: 30 s, time enough to cancel mid-way.
        job = self.pool(self.disk_pool).CloneVolume(source, name, sv(rate_limit=dbus.UInt64(3 * MiB)))
        self.assertIn(name, self.partitions(), "the partition is made before the job starts")
        self.wait_bytes_done(job)
        self.interface(job, JOB).Cancel(sv())
        props = self.wait_job(job, timeout=30)
        self.assertEqual(props["State"], "cancelled", props)
        self.assertLess(props["BytesDone"], props["Bytes"])
        pump(0.5)
        self.assertEqual(self.partitions(), before, "a cancelled clone left its partition")
        self.assertNotIn(volume_path(self.disk_pool, name), self.managed_objects())

    def test_import_upload_download_and_wipe_of_a_partition(self):
        size = 10 * MiB + 4096  # not a multiple of the partition's alignment
        raw = os.path.join(self.scratch, "import.raw")
        write_pattern_file(raw, size, [(0, b"\x33" * MiB), (5 * MiB, os.urandom(MiB)), (size - 4096, b"e" * 4096)])
        name = self.next_partition()
        job = self.pool(self.disk_pool).ImportVolume(name, unix_fd(raw, os.O_RDONLY), sv(wait=True))
        self.assert_completed(job)
        device = self.device_of(name)
        self.assert_same_content(raw, device, "raw", "raw")
        self.assert_zero_from(device, size)

        # Upload over the start of the partition, then download the whole partition.
        patch = os.path.join(self.scratch, "patch.raw")
        with open(patch, "wb") as f:
            f.write(b"\x44" * (2 * MiB))
        job = self.volume(self.disk_pool, name).Upload(unix_fd(patch, os.O_RDONLY), sv(offset=dbus.UInt64(MiB),
                                                                                        wait=True))
        self.assert_completed(job)
        self.qemu_io("raw", device, f"read -P 0x44 {MiB} {2 * MiB}")
        self.qemu_io("raw", device, f"read -P 0x33 0 {MiB}")
        downloaded = os.path.join(self.scratch, "download.raw")
        open(downloaded, "wb").close()
        job = self.volume(self.disk_pool, name).Download(unix_fd(downloaded, os.O_WRONLY), sv(wait=True))
        self.assert_completed(job)
        self.assertEqual(subprocess.run(["cmp", device, downloaded]).returncode, 0)

        job = self.volume(self.disk_pool, name).Wipe(sv(wait=True))
        self.assert_completed(job)
        self.assert_zero_from(device, 0)
        self.delete_partition(name)


if __name__ == "__main__":
    main()
