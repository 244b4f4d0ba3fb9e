#!/usr/bin/python3
"""Volumes: made and removed with virsh they follow on D-Bus within 2 s; CreateVolume (raw, qcow2,
preallocation), Resize and Delete do what qemu-img and virsh then see; the properties are libvirt's."""

import os
import subprocess

import dbus

from harness import EVENT_TIMEOUT, MiB, VOLUME, IntegrationTest, main, volume_path, sv



class VolumeTests(IntegrationTest):
    @classmethod
    def setUpEnvironment(cls):
        cls.target = cls.create_pool("vols")

    def create_volume(self, name, capacity, **options):
        path = self.pool("vols").CreateVolume(name, dbus.UInt64(capacity), sv(options))
        if "/job/" in path:  # a preallocated create may answer with a job: wait for the volume itself
            self.wait_object(volume_path("vols", name), VOLUME, timeout=60)
        else:
            self.assertEqual(str(path), volume_path("vols", name))
        return volume_path("vols", name)

    def test_volume_made_with_virsh_appears_and_its_deletion_disappears(self):
        self.virsh("vol-create-as", "vols", "by-virsh.qcow2", "16M", "--format", "qcow2")
        path = volume_path("vols", "by-virsh.qcow2")
        added = self.signals.wait_added(path, VOLUME)
        self.assertIsNotNone(added, f"no InterfacesAdded for {path} within {EVENT_TIMEOUT} s of vol-create-as")
        self.assertEqual(added[2][VOLUME]["Name"], "by-virsh.qcow2")
        self.assertEqual(added[2][VOLUME]["Capacity"], 16 * MiB)

        self.virsh("vol-delete", "by-virsh.qcow2", "--pool", "vols")
        self.assertIsNotNone(self.signals.wait_removed(path, VOLUME),
                             f"no InterfacesRemoved for {path} within {EVENT_TIMEOUT} s of vol-delete")
        self.assertNotIn(path, self.managed_objects())

    def test_create_raw_volume(self):
        path = self.create_volume("plain.img", 24 * MiB, format="raw")
        self.assertIsNotNone(self.signals.wait_added(path, VOLUME), "no InterfacesAdded for a created volume")
        props = self.properties(path, VOLUME)
        info = self.qemu_img_info(props["Path"])
        self.assertEqual(info["format"], "raw")
        self.assertEqual(info["virtual-size"], 24 * MiB)
        self.assertEqual(props["Format"], "raw")
        self.assertIn("plain.img", self.virsh_volumes("vols"))

    def test_create_qcow2_volume_is_the_default_format(self):
        path = self.create_volume("disk.qcow2", 64 * MiB)
        props = self.properties(path, VOLUME)
        info = self.qemu_img_info(props["Path"])
        self.assertEqual(info["format"], "qcow2")
        self.assertEqual(info["virtual-size"], 64 * MiB)
        self.assertEqual(info["format-specific"]["data"]["compat"], "1.1")
        self.assertEqual(props["Format"], "qcow2")

    def test_create_raw_volume_with_full_allocation(self):
        path = self.create_volume("falloc.img", 8 * MiB, format="raw", preallocation="falloc")
        info = self.qemu_img_info(self.properties(path, VOLUME)["Path"])
        self.assertGreaterEqual(info["actual-size"], 8 * MiB)

    def test_create_qcow2_volume_with_metadata_preallocation(self):
        sparse = self.qemu_img_info(self.properties(self.create_volume("sparse.qcow2", 256 * MiB), VOLUME)["Path"])
        path = self.create_volume("meta.qcow2", 256 * MiB, preallocation="metadata")
        info = self.qemu_img_info(self.properties(path, VOLUME)["Path"])
        self.assertEqual(info["format"], "qcow2")
        self.assertGreater(info["actual-size"], sparse["actual-size"])

    def test_volume_properties_match_virsh(self):
        path = self.create_volume("described.qcow2", 32 * MiB)
        props = self.properties(path, VOLUME)
        xml = self.virsh_xml("vol-dumpxml", "described.qcow2", "--pool", "vols")
        self.assertEqual(props["Name"], "described.qcow2")
        self.assertEqual(props["Key"], xml.findtext("key"))
        self.assertEqual(props["Path"], xml.findtext("target/path"))
        self.assertEqual(props["Path"], os.path.join(self.target, "described.qcow2"))
        self.assertEqual(props["Format"], xml.find("target/format").get("type"))
        self.assertEqual(props["Capacity"], int(xml.findtext("capacity")))
        self.assertEqual(props["Allocation"], int(xml.findtext("allocation")))
        self.assertEqual(props["Pool"], "/org/vmstor/Storage1/pool/vols")
        self.assertEqual(str(self.manager().LookupVolumeByPath(props["Path"], sv())), path)

    def test_resize_grows_and_emits_properties_changed(self):
        path = self.create_volume("growing.qcow2", 16 * MiB)
        self.signals.clear()
        self.volume("vols", "growing.qcow2").Resize(dbus.UInt64(48 * MiB), sv())
        self.assertEqual(self.qemu_img_info(self.properties(path, VOLUME)["Path"])["virtual-size"], 48 * MiB)
        changed = self.signals.wait_changed(path, VOLUME, "Capacity")
        self.assertIsNotNone(changed, "no PropertiesChanged for Capacity after Resize")
        self.assertEqual(self.properties(path, VOLUME)["Capacity"], 48 * MiB)
        self.assertEqual(int(self.virsh_xml("vol-dumpxml", "growing.qcow2", "--pool", "vols").findtext("capacity")),
                         48 * MiB)

    def test_resize_refuses_to_shrink_without_the_shrink_option(self):
        path = self.create_volume("shrinking.img", 32 * MiB, format="raw")
        self.assertDBusError("InvalidArgument", self.volume("vols", "shrinking.img").Resize, dbus.UInt64(16 * MiB),
                             sv(), mentions=["shrink"])
        self.assertEqual(self.qemu_img_info(self.properties(path, VOLUME)["Path"])["virtual-size"], 32 * MiB)
        self.volume("vols", "shrinking.img").Resize(dbus.UInt64(16 * MiB),
                                                    sv({"shrink": True}))
        self.assertEqual(self.qemu_img_info(self.properties(path, VOLUME)["Path"])["virtual-size"], 16 * MiB)

    def test_refresh_after_a_write_emits_the_new_allocation(self):
        path = self.create_volume("filled.img", 16 * MiB, format="raw")
        file = self.properties(path, VOLUME)["Path"]
        subprocess.run(["dd", "if=/dev/urandom", f"of={file}", "bs=1M", "count=4", "conv=notrunc,fsync",
                        "status=none"], check=True)
        self.signals.clear()
        self.pool("vols").Refresh(sv())
        self.assertIsNotNone(self.signals.wait_changed(path, VOLUME, "Allocation"),
                             "no PropertiesChanged for a volume's Allocation after Refresh")
        allocation = int(self.virsh_xml("vol-dumpxml", "filled.img", "--pool", "vols").findtext("allocation"))
        self.assertGreaterEqual(allocation, 4 * MiB)
        self.assertEqual(self.properties(path, VOLUME)["Allocation"], allocation)

    def test_delete_removes_the_file_and_the_object(self):
        path = self.create_volume("doomed.qcow2", 16 * MiB)
        file = self.properties(path, VOLUME)["Path"]
        self.signals.clear()
        self.volume("vols", "doomed.qcow2").Delete(sv())
        self.assertFalse(os.path.exists(file))
        self.assertNotIn("doomed.qcow2", self.virsh_volumes("vols"))
        self.assertIsNotNone(self.signals.wait_removed(path, VOLUME), "no InterfacesRemoved after Delete")
        self.assertNotIn(path, self.managed_objects())


if __name__ == "__main__":
    main()
