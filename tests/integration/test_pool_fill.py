#!/usr/bin/python3
"""A dir pool on a small file system of its own (a loop-mounted ext4) as it fills up and empties:
ThresholdCrossed once for each band crossed, both ways, and never again while the level stays in its band;
Thresholds set on D-Bus outlive a restart of vmstord; Overcommit is the sum of the volumes' capacities over
the pool's capacity; Pool.Build makes a pool's missing directory.

The test makes the loop device and mounts it, so it runs as root; libvirtd and vmstord run as the account.
"""

import os
import shutil
import subprocess

import dbus

from harness import (BUS_NAME, MiB, POOL, VMSTORD, IntegrationTest, main, pool_path, pump,
                     sv, unwrap)

JOB = "org.vmstor.Storage1.Job"
FS_SIZE = 64 * MiB


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


class PoolFillTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.fail("this test makes and mounts a loop device and needs root")

    def loop_ext4(self, name):
        """A fresh ext4 of FS_SIZE mounted at a directory of the account; unmounted and detached at the
        test's end, whatever happened (the clean-ups are registered as each step succeeds)."""
        image = self.env.path(f"{name}.ext4")
        with open(image, "wb") as f:
            f.truncate(FS_SIZE)
        self.addCleanup(os.unlink, image)
        device = run("losetup", "--find", "--show", image)
        self.addCleanup(subprocess.run, ["losetup", "--detach", device], check=False)
        # No blocks reserved for root: the whole file system is the pool's Available.
        run("mkfs.ext4", "-q", "-m", "0", "-F", device)
        mount = self.env.path(f"{name}.mnt")
        os.makedirs(mount)
        self.addCleanup(os.rmdir, mount)
        run("mount", "-t", "ext4", device, mount)
        self.addCleanup(subprocess.run, ["umount", mount], check=False)
        os.chown(mount, self.env.user.pw_uid, self.env.user.pw_gid)
        return mount

    def create_loop_pool(self, name):
        mount = self.loop_ext4(name)
        target = os.path.join(mount, "pool")
        self.manager().CreatePool(name, "dir", sv({"target.path": target}), sv())
        # Undefined before the file system goes (clean-ups run last first).
        self.addCleanup(self.remove_pool, name)
        return target

    def remove_pool(self, name):
        self.virsh("pool-destroy", name, check=False)
        self.virsh("pool-undefine", name, check=False)

    def record_crossings(self, name):
        crossings = []
        match = self.bus.add_signal_receiver(
            lambda level, used: crossings.append((str(level), float(used))), "ThresholdCrossed", POOL,
            BUS_NAME, pool_path(name))
        self.addCleanup(match.remove)
        pump(0.1)
        return crossings

    def refresh(self, name):
        """Has vmstord look at the pool now; the signals it sends before its answer are then delivered."""
        self.pool(name).Refresh(sv())
        pump(0.2)

    def used(self, name):
        props = self.properties(pool_path(name), POOL)
        return props["Allocation"] / props["Capacity"]

    def fill_to(self, name, path, fraction):
        """Adds a file that takes the pool to about `fraction` of its capacity."""
        props = self.properties(pool_path(name), POOL)
        missing = int(fraction * props["Capacity"]) - props["Allocation"]
        self.assertGreater(missing, MiB, f"the pool is already past {fraction}")
        run("fallocate", "-l", str(missing // 4096 * 4096), path)

    def fill_up(self, directory):
        """Fills the file system up to its last free block with files in `directory`. dd stops at ENOSPC
        while ext4 still holds back blocks for data it has not placed, and a big file's last blocks can
        go to its extent tree: small files of one block each take what stays."""
        subprocess.run(["dd", "if=/dev/zero", f"of={directory}/big", "bs=64K", "status=none"],
                       capture_output=True, timeout=60)
        os.sync()
        for n in range(256):
            if os.statvfs(directory).f_bavail == 0:
                return
            subprocess.run(["dd", "if=/dev/zero", f"of={directory}/small{n}", "bs=4K", "count=1",
                            "status=none", "conv=fsync"], capture_output=True, timeout=60)
        self.fail(f"{os.statvfs(directory).f_bavail} blocks stay free after filling {directory}")

    def assert_crossed(self, name, crossings, level):
        self.refresh(name)
        self.assertEqual([c[0] for c in crossings], [level], f"crossings after a change to {level}")
        self.assertAlmostEqual(crossings[0][1], self.used(name), places=6)
        virsh = self.virsh_pool_info(name)
        self.assertAlmostEqual(crossings[0][1], int(virsh["Allocation"]) / int(virsh["Capacity"]), places=6)
        crossings.clear()
        # Nothing moved: another look signals nothing (no flapping).
        self.refresh(name)
        self.assertEqual(crossings, [], "a refresh without a change signalled a crossing")

    def test_each_crossing_is_signalled_once_both_ways(self):
        target = self.create_loop_pool("filling")
        crossings = self.record_crossings("filling")
        self.refresh("filling")
        self.assertLess(self.used("filling"), 0.3, "a fresh ext4 should be mostly free")
        self.assertEqual(crossings, [])
        self.set_property(pool_path("filling"), POOL, "Thresholds",
                          dbus.Dictionary({"warning": 0.5, "critical": 0.75}, signature="sd"))
        self.refresh("filling")
        self.assertEqual(crossings, [], "thresholds above the fill level signalled a crossing")

        first, second, rest = (os.path.join(target, f) for f in ("first", "second", "rest"))
        os.makedirs(rest)
        self.fill_to("filling", first, 0.6)
        self.assert_crossed("filling", crossings, "warning")
        self.fill_to("filling", second, 0.85)
        self.assert_crossed("filling", crossings, "critical")
        self.fill_up(rest)
        self.assert_crossed("filling", crossings, "full")
        # Full although Available, libvirt's f_bfree, still counts the blocks ext4 keeps for itself.
        self.assertEqual(self.properties(pool_path("filling"), POOL)["Available"],
                         int(self.virsh_pool_info("filling")["Available"]))

        shutil.rmtree(rest)
        os.sync()
        self.assert_crossed("filling", crossings, "critical")
        os.unlink(second)
        os.sync()
        self.assert_crossed("filling", crossings, "warning")
        os.unlink(first)
        os.sync()
        self.assert_crossed("filling", crossings, "ok")

    def test_thresholds_moved_over_the_level_signal_and_outlive_a_restart(self):
        target = self.create_loop_pool("limits")
        path = pool_path("limits")
        crossings = self.record_crossings("limits")
        self.assertEqual(self.properties(path, POOL)["Thresholds"], {"warning": 0.8, "critical": 0.95})
        self.fill_to("limits", os.path.join(target, "data"), 0.3)
        self.refresh("limits")
        self.assertEqual(crossings, [])
        # Both below the fill level: the pool is now critical, and says so once.
        wanted = {"warning": 0.1234567891, "critical": 0.2345678912}  # read back to the last digit
        self.set_property(path, POOL, "Thresholds", dbus.Dictionary(wanted, signature="sd"))
        self.assertIsNotNone(self.signals.wait_changed(path, POOL, "Thresholds"),
                             "no PropertiesChanged for Thresholds")
        self.assertEqual(self.properties(path, POOL)["Thresholds"], wanted)
        self.refresh("limits")
        self.assertEqual([c[0] for c in crossings], ["critical"])

        self.env.stop_vmstord()
        self.env.start_vmstord(VMSTORD)
        self.wait_object(path, POOL)
        self.assertEqual(self.properties(path, POOL)["Thresholds"], wanted,
                         "the thresholds set before the restart are lost")
        # Only one key given: the other stays.
        self.set_property(path, POOL, "Thresholds", dbus.Dictionary({"critical": 0.99}, signature="sd"))
        self.assertEqual(self.properties(path, POOL)["Thresholds"], {"warning": wanted["warning"],
                                                                      "critical": 0.99})

    def test_overcommit_is_the_sum_of_capacities_over_the_pool_capacity(self):
        target = self.create_loop_pool("thin")
        path = pool_path("thin")
        self.assertEqual(self.properties(path, POOL)["Overcommit"], 0.0)
        pool = self.pool("thin")
        pool.CreateVolume("a.raw", dbus.UInt64(96 * MiB), sv(format="raw"))
        pool.CreateVolume("b.qcow2", dbus.UInt64(160 * MiB), sv(format="qcow2"))
        # Sparse: together they take a fraction of the pool they promise twice over.
        self.assertLess(os.stat(os.path.join(target, "a.raw")).st_blocks * 512, MiB)
        self.refresh("thin")
        capacities = []
        for name in ("a.raw", "b.qcow2"):
            xml = self.virsh_xml("vol-dumpxml", "--pool", "thin", name)
            capacities.append(int(xml.findtext("capacity")))
        self.assertEqual(sum(capacities), 256 * MiB)
        expected = sum(capacities) / int(self.virsh_pool_info("thin")["Capacity"])
        self.assertGreater(expected, 1)
        self.assertAlmostEqual(self.properties(path, POOL)["Overcommit"], expected, places=9)

        self.signals.clear()
        self.volume("thin", "a.raw").Delete(sv())
        changed = self.signals.wait_changed(path, POOL, "Overcommit")
        self.assertIsNotNone(changed, "no PropertiesChanged for Overcommit after a volume went")
        expected = 160 * MiB / int(self.virsh_pool_info("thin")["Capacity"])
        self.assertAlmostEqual(self.properties(path, POOL)["Overcommit"], expected, places=9)

    def test_build_makes_the_missing_directory(self):
        target = os.path.join(self.env.pools_dir, "to-build", "images")
        xml = f"<pool type='dir'><name>to-build</name><target><path>{target}</path></target></pool>"
        self.manager().DefinePoolXML(xml, sv())
        self.addCleanup(self.remove_pool, "to-build")
        pool = self.pool("to-build")
        self.assertDBusError("LibvirtError", pool.Start, sv())
        os.makedirs(os.path.dirname(target))
        os.chown(os.path.dirname(target), self.env.user.pw_uid, self.env.user.pw_gid)
        job = str(pool.Build(sv(wait=True)))
        props = unwrap(self.interface(job, "org.freedesktop.DBus.Properties").GetAll(JOB))
        self.assertEqual((props["Operation"], props["State"]), ("pool-build", "completed"))
        self.assertIn(pool_path("to-build"), props["Objects"])
        self.assertTrue(os.path.isdir(target), "Build did not make the pool's directory")
        self.assertEqual(os.stat(target).st_uid, self.env.user.pw_uid)
        pool.Start(sv())
        self.assertEqual(self.virsh_pool_info("to-build")["State"], "running")
        self.assertEqual(self.properties(pool_path("to-build"), POOL)["State"], "running")


if __name__ == "__main__":
    main()
