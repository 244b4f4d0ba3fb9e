#!/usr/bin/python3
"""The API documents itself: every key that a method's a{sv} argument accepts, as the daemon itself lists
them in its unknown-key error, is named in that argument's doc string in dbus/*.xml.

Each method of each org.vmstor.Storage1 interface is called with an unknown key in one a{sv} argument at a
time (its other arguments made up from their signatures); the InvalidArgument answer lists the known keys.
"""

import glob
import os
import re
import xml.etree.ElementTree as ElementTree

import dbus

from harness import (MANAGER, MiB, POOL, ROOT, SOURCE_ROOT, VOLUME, IntegrationTest, main, pool_path,
                     sv, volume_path)

SNAPSHOT = "org.vmstor.Storage1.Snapshot"
JOB = "org.vmstor.Storage1.Job"
DOC = "org.gtk.GDBus.DocString"
UNKNOWN = "no-such-key"
# Honoured by every method, as the comment at the top of org.vmstor.Storage1.Manager.xml says once for all.
EVERYWHERE = "auth.no_user_interaction"
KNOWN_KEYS = re.compile(r"unknown key '" + re.escape(UNKNOWN) + r"' \(known keys: ([^)]*)\)")


def doc_of(element):
    for annotation in element.findall("annotation"):
        if annotation.get("name") == DOC:
            return annotation.get("value")
    return ""


def contract_methods():
    """(interface, method, [(arg name, type, doc)] of the in-arguments) of every method in dbus/*.xml."""
    methods = []
    for path in sorted(glob.glob(os.path.join(SOURCE_ROOT, "dbus", "org.vmstor.Storage1.*.xml"))):
        for interface in ElementTree.parse(path).getroot().findall("interface"):
            for method in interface.findall("method"):
                args = [(a.get("name"), a.get("type"), doc_of(a)) for a in method.findall("arg")
                        if a.get("direction", "in") == "in"]
                methods.append((interface.get("name"), method.get("name"), args))
    return methods


def names_key(doc, key):
    """Whether `doc` names `key` as a word of its own (not "format" inside "source.format")."""
    return re.search(r"(?<![\w.-])" + re.escape(key) + r"(?![\w-])", doc) is not None


class DocumentedOptionsTest(IntegrationTest):
    @classmethod
    def setUpEnvironment(cls):
        cls.create_pool("docs")
        cls.pool("docs").CreateVolume("disk", dbus.UInt64(4 * MiB), sv(format="qcow2"))
        cls.volume("docs", "disk").CreateSnapshot("snap", sv())
        cls.create_pool("built", build=False, start=False, autostart=False)
        cls.job = str(cls.pool("built").Build(sv(wait=True)))  # a finished job stays for 60 s
        cls.objects = {
            MANAGER: ROOT,
            POOL: pool_path("docs"),
            VOLUME: volume_path("docs", "disk"),
            SNAPSHOT: volume_path("docs", "disk") + "/snapshot/snap",
            JOB: cls.job,
        }

    def argument(self, kind, probed):
        """A value of D-Bus type `kind` for an argument that is not the one probed."""
        if kind == "a{sv}":
            return sv({UNKNOWN: dbus.Boolean(True)}) if probed else sv()
        values = {"s": "doc-probe", "t": dbus.UInt64(MiB), "u": dbus.UInt32(0), "b": dbus.Boolean(False),
                  "o": dbus.ObjectPath(pool_path("docs"))}
        if kind == "h":
            return dbus.types.UnixFd(self.null)
        if kind not in values:
            self.fail(f"no made-up value for an argument of type {kind}: teach the test")
        return values[kind]

    def known_keys(self, interface, method, args, probed):
        """The keys the daemon lists when the argument `probed` holds an unknown key."""
        values = [self.argument(kind, name == probed) for name, kind, _ in args]
        signature = "".join(kind for _, kind, _ in args)
        call = getattr(self.interface(self.objects[interface], interface), method)
        message = self.assertDBusError("InvalidArgument", lambda: call(*values, signature=signature))
        found = KNOWN_KEYS.search(message)
        self.assertIsNotNone(found, f"{interface}.{method}: the unknown-key error in '{probed}' does not list "
                                    f"the known keys: {message!r}")
        return [key.strip() for key in found.group(1).split(",") if key.strip()]

    def test_every_accepted_key_is_documented(self):
        self.null = os.open(os.devnull, os.O_RDWR)
        self.addCleanup(os.close, self.null)
        probed = 0
        undocumented = []
        for interface, method, args in contract_methods():
            self.assertIn(interface, self.objects, f"no object of {interface} to call {method} on")
            for name, kind, doc in args:
                if kind != "a{sv}":
                    continue
                with self.subTest(method=f"{interface}.{method}", argument=name):
                    keys = self.known_keys(interface, method, args, name)
                    probed += 1
                    self.assertIn(EVERYWHERE, keys)
                    undocumented += [f"{interface}.{method} {name}: {key}" for key in keys
                                     if key != EVERYWHERE and not names_key(doc, key)]
        self.assertEqual(undocumented, [], "keys the daemon accepts that the XML doc strings do not name")
        # Every method takes options (36 a{sv} arguments when this was written): none was skipped.
        self.assertEqual(probed, sum(kind == "a{sv}" for _, _, args in contract_methods() for _, kind, _ in args))
        self.assertGreaterEqual(probed, 36)

    def test_everywhere_key_is_documented_once_for_all(self):
        with open(os.path.join(SOURCE_ROOT, "dbus", f"{MANAGER}.xml")) as f:
            self.assertIn(f"The key {EVERYWHERE} (b) is honoured everywhere", f.read())

    def test_known_keys_pattern_reads_the_daemons_message(self):
        message = self.assertDBusError("InvalidArgument", self.manager().ListJobs, sv({UNKNOWN: "x"}))
        self.assertTrue(message.startswith("ListJobs options:"), message)
        self.assertEqual(KNOWN_KEYS.search(message).group(1), EVERYWHERE)


if __name__ == "__main__":
    main()
