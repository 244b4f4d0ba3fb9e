#!/usr/bin/python3
"""The Volume objects as clients see them: the live introspection of a volume lists every method, property
and signal of dbus/org.vmstor.Storage1.Volume.xml with the same arguments and signatures,
GetManagedObjects carries every Volume property with its type, the object tree leads to the volumes, and
InterfacesAdded, PropertiesChanged and InterfacesRemoved arrive."""

import json
import os
import subprocess
import xml.etree.ElementTree as ElementTree

import dbus

from harness import (BUS_NAME, MiB, OBJECT_MANAGER, PROPERTIES, ROOT, SOURCE_ROOT, VOLUME, IntegrationTest,
                     encode_segment, main, pool_path, sv, volume_path)

INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
EMITS_CHANGED = "org.freedesktop.DBus.Property.EmitsChangedSignal"


def contract_interface():
    """The Volume interface element of the contract in dbus/."""
    tree = ElementTree.parse(os.path.join(SOURCE_ROOT, "dbus", f"{VOLUME}.xml"))
    return tree.getroot().find(f"interface[@name='{VOLUME}']")


def members(interface):
    """Methods and signals with their (name, type, direction) arguments, properties with type, access and
    whether they emit PropertiesChanged ("true" unless annotated otherwise)."""
    def args(element, default_direction):
        return [(a.get("name"), a.get("type"), a.get("direction", default_direction)) for a in element.findall("arg")]

    def emits(prop):
        for annotation in prop.findall("annotation"):
            if annotation.get("name") == EMITS_CHANGED:
                return annotation.get("value")
        return "true"

    return {
        "methods": {m.get("name"): args(m, "in") for m in interface.findall("method")},
        "signals": {s.get("name"): args(s, "out") for s in interface.findall("signal")},
        "properties": {p.get("name"): (p.get("type"), p.get("access"), emits(p))
                       for p in interface.findall("property")},
    }


def signature_of(value):
    """The D-Bus signature of a value as dbus-python decoded it."""
    simple = {dbus.String: "s", dbus.ObjectPath: "o", dbus.UInt64: "t", dbus.Int64: "x", dbus.UInt32: "u",
              dbus.Int32: "i", dbus.Boolean: "b", dbus.Double: "d", dbus.Byte: "y", dbus.Signature: "g"}
    for kind, code in simple.items():
        if isinstance(value, kind):
            return code
    if isinstance(value, dbus.Dictionary):
        return f"a{{{value.signature}}}"
    if isinstance(value, dbus.Array):
        return f"a{value.signature}"
    if isinstance(value, dbus.Struct):
        return "(" + "".join(signature_of(v) for v in value) + ")"
    raise AssertionError(f"unexpected value {value!r} of type {type(value)}")


class IntrospectionTests(IntegrationTest):
    @classmethod
    def setUpEnvironment(cls):
        cls.create_pool("intro")
        cls.pool("intro").CreateVolume("seen.qcow2", dbus.UInt64(16 * MiB), sv())
        cls.path = volume_path("intro", "seen.qcow2")

    def introspect(self, path):
        proxy = self.bus.get_object(BUS_NAME, path, introspect=False)
        return ElementTree.fromstring(str(proxy.Introspect(dbus_interface=INTROSPECTABLE)))

    def raw_managed_objects(self):
        """GetManagedObjects as dbus-python decodes it, types kept."""
        root = self.bus.get_object(BUS_NAME, ROOT, introspect=False)
        return root.GetManagedObjects(dbus_interface=OBJECT_MANAGER)

    def wire_entries_of(self, path):
        """The vmstor interfaces of each entry for `path` in GetManagedObjects as sent (dbus-python would
        merge repeated keys): busctl's JSON keeps every dictionary entry as an object member."""
        reply = subprocess.run(["busctl", f"--address={self.env.bus_address}", "--json=short", "call", BUS_NAME,
                                ROOT, OBJECT_MANAGER, "GetManagedObjects"],
                               check=True, capture_output=True, text=True).stdout
        entries = []

        def keep_pairs(pairs):
            for key, value in pairs:
                if key == path:
                    entries.append([name for name, _ in value if name.startswith("org.vmstor.")])
            return pairs

        json.loads(reply, object_pairs_hook=keep_pairs)
        return entries

    def test_live_introspection_matches_the_contract(self):
        self.wait_object(self.path, VOLUME)
        live = self.introspect(self.path).find(f"interface[@name='{VOLUME}']")
        self.assertIsNotNone(live, f"the introspection of {self.path} has no {VOLUME}")
        expected, actual = members(contract_interface()), members(live)
        self.assertGreater(len(expected["methods"]), 10, "the contract was not read")
        self.assertEqual(actual["methods"], expected["methods"])
        self.assertEqual(actual["signals"], expected["signals"])
        self.assertEqual(actual["properties"], expected["properties"])

    def test_the_object_tree_leads_to_the_volume(self):
        self.wait_object(self.path, VOLUME)
        children = [node.get("name") for node in self.introspect(pool_path("intro")).findall("node")]
        self.assertIn("volume", children, f"introspecting {pool_path('intro')} shows no volume node")
        volumes = [node.get("name") for node in self.introspect(pool_path("intro") + "/volume").findall("node")]
        self.assertIn(encode_segment("seen.qcow2"), volumes)

    def test_managed_objects_carry_every_property_with_its_type(self):
        self.wait_object(self.path, VOLUME)
        expected = {name: prop[0] for name, prop in members(contract_interface())["properties"].items()}
        listed = self.raw_managed_objects()[dbus.ObjectPath(self.path)][VOLUME]
        self.assertEqual(self.wire_entries_of(self.path), [[VOLUME]])
        self.assertEqual({str(name): signature_of(value) for name, value in listed.items()}, expected)
        self.assertEqual(str(listed["Pool"]), pool_path("intro"))
        self.assertEqual(str(listed["Name"]), "seen.qcow2")
        self.assertEqual(int(listed["Capacity"]), 16 * MiB)
        # Properties.Get and GetAll answer the same values with the same types.
        properties = dbus.Interface(self.bus.get_object(BUS_NAME, self.path, introspect=False), PROPERTIES)
        self.assertEqual(properties.GetAll(VOLUME), listed)
        for name, value in listed.items():
            got = properties.Get(VOLUME, name)
            self.assertEqual((got, signature_of(got)), (value, expected[str(name)]), name)

    def test_added_changed_and_removed_arrive(self):
        self.pool("intro").CreateVolume("moving.qcow2", dbus.UInt64(8 * MiB), sv())
        path = volume_path("intro", "moving.qcow2")
        added = self.signals.wait_added(path, VOLUME)
        self.assertIsNotNone(added, f"no InterfacesAdded for {path}")
        self.assertEqual(set(added[2][VOLUME]), set(members(contract_interface())["properties"]))
        self.assertEqual(added[2][VOLUME]["Capacity"], 8 * MiB)

        self.volume("intro", "moving.qcow2").Resize(dbus.UInt64(24 * MiB), sv())
        changed = self.signals.wait_changed(path, VOLUME, "Capacity")
        self.assertIsNotNone(changed, f"no PropertiesChanged of Capacity for {path}")
        self.assertEqual(changed[3]["Capacity"], 24 * MiB)
        for name in list(changed[3]) + list(changed[4]):
            self.assertEqual(members(contract_interface())["properties"][name][2], "true", name)

        self.volume("intro", "moving.qcow2").Delete(sv())
        removed = self.signals.wait_removed(path, VOLUME)
        self.assertIsNotNone(removed, f"no InterfacesRemoved for {path}")
        self.assertNotIn(path, self.managed_objects())

    def test_a_volume_with_a_snapshot_is_still_served(self):
        # A snapshot object under the volume's path gives that path a node of its own on the bus.
        self.pool("intro").CreateVolume("snapped.qcow2", dbus.UInt64(8 * MiB), sv())
        path = volume_path("intro", "snapped.qcow2")
        self.wait_object(path, VOLUME)
        snapshot = str(self.volume("intro", "snapped.qcow2").CreateSnapshot("first", sv()))
        self.assertTrue(snapshot.startswith(path + "/"), snapshot)
        self.wait_object(snapshot, "org.vmstor.Storage1.Snapshot")
        self.assertEqual(self.properties(path, VOLUME)["Name"], "snapped.qcow2")
        self.assertIsNotNone(self.introspect(path).find(f"interface[@name='{VOLUME}']"))
        self.assertIn(VOLUME, self.managed_objects()[path])
        self.assertEqual(self.wire_entries_of(path), [[VOLUME]],
                         f"GetManagedObjects must list {path} once, with {VOLUME} once")
        info = self.volume("intro", "snapped.qcow2").Info(sv())
        self.assertIn("first", str(info))

    def test_a_method_error_keeps_its_name(self):
        self.wait_object(self.path, VOLUME)
        self.assertDBusError("InvalidArgument", self.volume("intro", "seen.qcow2").Resize, dbus.UInt64(MiB),
                             sv(bogus=True), mentions=("bogus",))
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.volume("intro", "seen.qcow2").Resize("not a size", sv())
        self.assertEqual(raised.exception.get_dbus_name(), "org.freedesktop.DBus.Error.InvalidArgs")


if __name__ == "__main__":
    main()
