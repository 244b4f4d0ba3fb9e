#!/usr/bin/python3
"""Volume properties and Map against what their real peers say: UsedBy against libvirt domains defined
(not started) with disks on the volume, Encrypted against a LUKS qcow2 made by qemu-img, Physical against
stat(2) and libvirt, Map over D-Bus against qemu-img map."""

import json
import os
import subprocess
import time

import dbus

from harness import EVENT_TIMEOUT, MiB, VOLUME, IntegrationTest, main, pool_path, pump, sv, unwrap, \
    volume_path

USAGE_TIMEOUT = 15.0  # vmstord looks at the domains every third poll (3 s); generous for a loaded machine


def domain_xml(name, disks):
    devices = "".join(f"<disk type='{kind}' device='disk'><driver name='qemu' type='{fmt}'/>{source}"
                      f"<target dev='vd{chr(ord('a') + i)}' bus='virtio'/></disk>"
                      for i, (kind, fmt, source) in enumerate(disks))
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            f"<os><type arch='x86_64'>hvm</type></os><devices>{devices}</devices></domain>")


class VolumePeersTest(IntegrationTest):
    @classmethod
    def setUpEnvironment(cls):
        cls.target = cls.create_pool("peers")

    def create(self, name, capacity, **options):
        self.pool("peers").CreateVolume(name, dbus.UInt64(capacity), sv(options))
        self.addCleanup(self.virsh, "vol-delete", "--pool", "peers", name, check=False)
        return os.path.join(self.target, name)

    def volume_properties(self, name):
        return self.properties(volume_path("peers", name), VOLUME)

    def define_domain(self, name, disks):
        xml_file = self.env.path(f"{name}.xml")
        with open(xml_file, "w") as f:
            f.write(domain_xml(name, disks))
        self.virsh("define", xml_file)
        self.addCleanup(self.virsh, "undefine", name, check=False)

    def wait_used_by(self, name, expected):
        """Waits until UsedBy is `expected`; fails naming what it was after USAGE_TIMEOUT."""
        deadline = time.monotonic() + USAGE_TIMEOUT
        while True:
            used_by = sorted(self.volume_properties(name)["UsedBy"])
            if used_by == expected or time.monotonic() >= deadline:
                break
            pump(0.2)
        self.assertEqual(used_by, expected, f"UsedBy of {name} within {USAGE_TIMEOUT} s")

    def test_used_by_names_the_domains_whose_disks_are_on_the_volume(self):
        disk = self.create("shared.qcow2", 16 * MiB, format="qcow2")
        self.create("alone.raw", 16 * MiB, format="raw")
        self.assertEqual(self.volume_properties("shared.qcow2")["UsedBy"], [])
        # One domain names the file, another the pool and volume; neither is started.
        self.define_domain("by-path", [("file", "qcow2", f"<source file='{disk}'/>")])
        self.define_domain("by-volume", [("volume", "qcow2", "<source pool='peers' volume='shared.qcow2'/>")])
        self.assertEqual(self.virsh("domstate", "by-path").stdout.strip(), "shut off")
        self.assertIn(disk, self.virsh("domblklist", "by-path").stdout)
        self.wait_used_by("shared.qcow2", ["by-path", "by-volume"])
        self.assertEqual(self.volume_properties("alone.raw")["UsedBy"], [])

        self.signals.clear()
        self.virsh("undefine", "by-path")
        self.wait_used_by("shared.qcow2", ["by-volume"])
        self.assertIsNotNone(self.signals.wait_changed(volume_path("peers", "shared.qcow2"), VOLUME, "UsedBy",
                                                       EVENT_TIMEOUT), "no PropertiesChanged for UsedBy")
        self.virsh("undefine", "by-volume")
        self.wait_used_by("shared.qcow2", [])

    def test_encrypted_is_true_for_a_luks_qcow2_made_by_qemu_img(self):
        luks = os.path.join(self.target, "secret.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=s,data=not-a-secret",
                        "-o", "encrypt.format=luks,encrypt.key-secret=s", luks, "16M"], check=True, timeout=60)
        self.addCleanup(self.virsh, "vol-delete", "--pool", "peers", "secret.qcow2", check=False)
        self.assertEqual(self.qemu_img_info(luks)["format-specific"]["data"]["encrypt"]["format"], "luks")
        os.chown(luks, self.env.user.pw_uid, self.env.user.pw_gid)
        plain = self.create("plain.qcow2", 16 * MiB, format="qcow2")
        self.assertNotIn("encrypt", self.qemu_img_info(plain)["format-specific"]["data"])
        self.pool("peers").Refresh(sv())
        self.wait_object(volume_path("peers", "secret.qcow2"), VOLUME)
        self.assertTrue(self.volume_properties("secret.qcow2")["Encrypted"])
        self.assertFalse(self.volume_properties("plain.qcow2")["Encrypted"])
        xml = self.virsh_xml("vol-dumpxml", "--pool", "peers", "secret.qcow2")
        self.assertIsNotNone(xml.find("target/encryption"), "libvirt does not see the encryption either")

    def test_physical_is_the_size_of_the_file(self):
        raw = self.create("sparse.raw", 48 * MiB, format="raw")
        qcow2 = self.create("small.qcow2", 48 * MiB, format="qcow2")
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 2M", qcow2], check=True,
                       capture_output=True, timeout=60)
        self.pool("peers").Refresh(sv())
        for name, path in (("sparse.raw", raw), ("small.qcow2", qcow2)):
            props = self.volume_properties(name)
            xml = self.virsh_xml("vol-dumpxml", "--pool", "peers", name)
            self.assertEqual(props["Physical"], os.stat(path).st_size, name)
            self.assertEqual(props["Physical"], int(xml.findtext("physical")), name)
        # The two are not the same number by accident: a sparse raw file is big and takes little room,
        # a qcow2 file holding 2 MiB is small and promises 48 MiB.
        raw_props, qcow2_props = self.volume_properties("sparse.raw"), self.volume_properties("small.qcow2")
        self.assertEqual(raw_props["Physical"], 48 * MiB)
        self.assertLess(raw_props["Allocation"], raw_props["Physical"])
        self.assertLess(qcow2_props["Physical"], qcow2_props["Capacity"])
        self.assertGreater(qcow2_props["Physical"], 2 * MiB)

    def test_map_over_dbus_is_qemu_img_map(self):
        path = self.create("mapped.qcow2", 8 * MiB, format="qcow2")
        for command in ("write -P 0x11 0 64k", "write -P 0x22 3M 1M", "write -z 6M 512k"):
            subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path], check=True, capture_output=True,
                           timeout=60)
        done = subprocess.run(["qemu-img", "map", "-U", "--output=json", path], capture_output=True, text=True,
                              check=True, timeout=60)
        expected = json.loads(done.stdout)
        self.assertGreater(len(expected), 3, "the writes should make several extents")
        extents = unwrap(self.volume("peers", "mapped.qcow2").Map(sv()))
        # qemu-img's fields (it leaves out "compressed" and an offset of unallocated extents).
        self.assertEqual([{k: e[k] for k in x} for e, x in zip(extents, expected)], expected)
        self.assertEqual(len(extents), len(expected))
        self.assertEqual(sum(e["length"] for e in extents), 8 * MiB)


if __name__ == "__main__":
    main()
