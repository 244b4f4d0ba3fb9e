#!/usr/bin/python3
"""libvirtd restarts while vmstord runs: Connected goes false, the objects stay served, Connected comes
back true within a bounded time, and changes made after the restart still reach D-Bus."""

import os
import time

import dbus

from harness import MANAGER, POOL, ROOT, VOLUME, IntegrationTest, MiB, main, pool_path, pump, volume_path, sv

DISCONNECT_TIMEOUT = 10.0  # seconds for vmstord to notice that libvirtd is gone
RECONNECT_TIMEOUT = 30.0  # seconds for vmstord's backoff to find libvirtd again


class ReconnectTests(IntegrationTest):
    def wait_connected(self, expected, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.properties(ROOT, MANAGER)["Connected"] is expected:
                return time.monotonic() - (deadline - timeout)
            pump(0.1)
        self.fail(f"Connected did not become {expected} within {timeout} s")

    def test_libvirtd_restart(self):
        target = self.create_pool("kept")
        self.pool("kept").CreateVolume("kept.qcow2", dbus.UInt64(16 * MiB), sv())
        self.wait_object(volume_path("kept", "kept.qcow2"), VOLUME)
        before = self.managed_objects()
        self.assertTrue(self.properties(ROOT, MANAGER)["Connected"])

        self.signals.clear()
        self.env.stop_libvirtd()
        self.wait_connected(False, DISCONNECT_TIMEOUT)
        self.assertIsNotNone(self.signals.wait_for(
            lambda e: e[0] == "changed" and e[1] == ROOT and e[3].get("Connected") is False, 1.0),
            "no PropertiesChanged Connected=false")
        # The cached state is still served while libvirtd is away.
        self.assertEqual(sorted(self.managed_objects()), sorted(before))
        self.assertEqual(self.properties(pool_path("kept"), POOL)["Name"], "kept")

        self.signals.clear()
        self.env.start_libvirtd()
        took = self.wait_connected(True, RECONNECT_TIMEOUT)
        print(f"vmstord reconnected {took:.1f} s after libvirtd came back")
        self.assertIsNotNone(self.signals.wait_for(
            lambda e: e[0] == "changed" and e[1] == ROOT and e[3].get("Connected") is True, 1.0),
            "no PropertiesChanged Connected=true")
        self.assertEqual(sorted(self.managed_objects()), sorted(before), "objects changed across the restart")
        self.assertEqual(self.properties(volume_path("kept", "kept.qcow2"), VOLUME)["Capacity"], 16 * MiB)

        # Events flow again: a pool defined with virsh after the restart appears.
        self.virsh("pool-define-as", "after-restart", "dir", "--target", os.path.join(self.env.pools_dir, "after"))
        self.assertIsNotNone(self.signals.wait_added(pool_path("after-restart"), POOL),
                             "a pool defined after the reconnection did not appear")
        # And calls reach the new libvirtd.
        self.pool("kept").Refresh(sv())
        self.volume("kept", "kept.qcow2").Resize(dbus.UInt64(32 * MiB), sv())
        self.assertEqual(self.qemu_img_info(os.path.join(target, "kept.qcow2"))["virtual-size"], 32 * MiB)

    def test_changes_made_while_libvirtd_was_down_are_caught_up(self):
        self.create_pool("caught-up")
        self.env.stop_libvirtd()
        self.wait_connected(False, DISCONNECT_TIMEOUT)
        # A volume made with virsh before vmstord has reconnected must show up once it has.
        self.env.start_libvirtd()
        self.virsh("vol-create-as", "caught-up", "late.img", "4M", "--format", "raw")
        self.wait_connected(True, RECONNECT_TIMEOUT)
        self.wait_object(volume_path("caught-up", "late.img"), VOLUME, timeout=5.0)


if __name__ == "__main__":
    main()
