#!/usr/bin/python3
"""Pools with a source: Pool.Build of a disk pool writes a partition table on a blank loop device, the
Source property is the pool's <source> as libvirt has it, and FindPoolSources carries its hints to libvirt's
source discovery and libvirt's answer back.

Of libvirt's discoveries (logical: LVM's pvs; netfs: showmount and gluster; iscsi: iscsiadm) none can find
a source on a machine without device-mapper, NFS or iSCSI, nor can LVM's tools see a loop device as the
unprivileged account of the private libvirtd: what is checked here is that the hints arrive (libvirt's answer
changes with source.host) and that libvirt's own refusal comes back as it is.

As in tests/jobs/test_block_volumes.py, libvirtd gets CAP_SYS_ADMIN and CAP_DAC_OVERRIDE to partition the
loop device and vmstord runs as root; the test makes the loop device, so it runs as root.
"""

import os
import subprocess

import dbus

from harness import MiB, POOL, IntegrationTest, main, pool_path, sv, unwrap

JOB = "org.vmstor.Storage1.Job"
DISK_SIZE = 64 * MiB


class PoolSourcesTest(IntegrationTest):
    libvirtd_capabilities = ("sys_admin", "dac_override")
    vmstord_as_root = True

    def blank_disk(self):
        """A loop device over a file of zeroes, detached at the test's end, and a link to it named like
        udev's /dev/disk/by-* ones, as in tests/jobs/test_block_volumes.py (libvirt 9 names partitions
        by cutting the disk's name off theirs)."""
        self.assertEqual(os.geteuid(), 0, "this test makes a loop device and needs root")
        image = self.env.path("blank.img")
        with open(image, "wb") as f:
            f.truncate(DISK_SIZE)
        self.loop = subprocess.run(["losetup", "--find", "--show", "--partscan", image], capture_output=True,
                                   text=True, check=True).stdout.strip()
        self.addCleanup(subprocess.run, ["losetup", "--detach", self.loop], check=False)
        dev_dir = self.env.path("dev")
        os.makedirs(dev_dir)
        link = os.path.join(dev_dir, os.path.basename(self.loop) + "p")
        os.symlink(self.loop, link)
        return dev_dir, link

    def partition_table(self):
        done = subprocess.run(["blkid", "-p", "-o", "value", "-s", "PTTYPE", self.loop], capture_output=True,
                              text=True, timeout=60)
        return done.stdout.strip()

    def test_build_partitions_the_blank_disk_and_source_is_libvirts(self):
        dev_dir, link = self.blank_disk()
        self.assertEqual(self.partition_table(), "", "the loop device should start blank")
        self.manager().CreatePool("disk", "disk",
                                  sv({"source.device": dbus.Array([link], signature="s"),
                                      "source.format": "gpt", "target.path": dev_dir}),
                                  sv(build=False, start=False, autostart=False))
        self.addCleanup(self.virsh, "pool-undefine", "disk", check=False)
        self.addCleanup(self.virsh, "pool-destroy", "disk", check=False)
        path = pool_path("disk")
        pool = self.pool("disk")
        source = self.properties(path, POOL)["Source"]
        xml = self.virsh_xml("pool-dumpxml", "disk")
        self.assertEqual(source, {
            "source.device": [d.get("path") for d in xml.findall("source/device")],
            "source.format": xml.find("source/format").get("type"),
        })
        self.assertEqual(source["source.device"], [link])
        self.assertEqual(source["source.format"], "gpt")

        job = str(pool.Build(sv(wait=True)))
        props = unwrap(self.interface(job, "org.freedesktop.DBus.Properties").GetAll(JOB))
        self.assertEqual((props["Operation"], props["State"]), ("pool-build", "completed"))
        self.assertEqual(self.partition_table(), "gpt", "Build did not write a GPT on the disk")
        pool.Start(sv())
        self.assertEqual(self.virsh_pool_info("disk")["State"], "running")
        self.assertEqual(self.properties(path, POOL)["Capacity"], int(self.virsh_pool_info("disk")["Capacity"]))
        pool.Stop(sv())
        pool.Undefine(sv())

    def test_find_pool_sources_carries_the_hint_and_libvirts_answer(self):
        manager = self.manager()
        # Without a host libvirt refuses; with one it looks there: the hint reached it.
        without = self.assertDBusError("InvalidArgument", manager.FindPoolSources, "netfs", sv(), sv())
        self.assertIn("hostname must be specified", without)
        with_host = self.assertDBusError("LibvirtError", manager.FindPoolSources, "netfs",
                                         sv({"source.host": "localhost"}), sv())
        # No NFS server here: libvirt's answer, as virsh gets it.
        answer = "no storage pools were found on host 'localhost'"
        self.assertIn(answer, with_host)
        self.assertIn(answer, self.virsh("find-storage-pool-sources-as", "netfs", "localhost", check=False).stderr)
        # A type without discovery: libvirt's refusal, named.
        refused = self.assertDBusError("NotSupported", manager.FindPoolSources, "disk", sv(), sv())
        self.assertIn("disk", refused)
        self.assertIn("source discovery", refused)
        self.assertDBusError("InvalidArgument", manager.FindPoolSources, "netfs",
                             sv({"source.hostname": "localhost"}), sv(), mentions=["source.hostname"])


if __name__ == "__main__":
    main()
