#!/usr/bin/python3
"""Bad input: every refused call answers the named error of dbus-api.md, with a message that names what
was refused, and leaves libvirt and the object tree exactly as they were."""

import os

import dbus

from harness import MiB, VOLUME, IntegrationTest, main, pool_path, volume_path, sv


BAD_NAMES = [
    ("empty", ""),
    ("256 bytes", "n" * 256),
    ("256 bytes of UTF-8", "é" * 128),
    ("slash", "a/b"),
    ("dot-dot", ".."),
    ("leading dot-dot path", "../escape"),
    ("control character SOH", "a\x01b"),
    ("tab", "a\tb"),
    ("newline", "a\nb"),
    ("DEL", "a\x7fb"),
]
HUGE_SIZES = [("2^63", 2**63), ("2^64-1", 2**64 - 1), ("1 EiB", 2**60)]


class BadInputTests(IntegrationTest):
    @classmethod
    def setUpEnvironment(cls):
        cls.target = cls.create_pool("good")
        cls.pool("good").CreateVolume("existing.qcow2", dbus.UInt64(16 * MiB), sv())

    def setUp(self):
        super().setUp()
        self.wait_object(volume_path("good", "existing.qcow2"), VOLUME)
        self.libvirt_before = self.libvirt_state()
        self.objects_before = sorted(self.managed_objects())
        self.files_before = sorted(os.listdir(self.env.pools_dir)), sorted(os.listdir(self.target))

    def assertNothingChanged(self):
        self.assertEqual(self.libvirt_state(), self.libvirt_before, "a refused call changed libvirt's pools")
        self.assertEqual(sorted(self.managed_objects()), self.objects_before, "a refused call changed the objects")
        self.assertEqual((sorted(os.listdir(self.env.pools_dir)), sorted(os.listdir(self.target))),
                         self.files_before, "a refused call left files behind")

    def refused(self, error, call, *args, mentions=()):
        message = self.assertDBusError(error, call, *args, mentions=mentions)
        self.assertNothingChanged()
        return message

    def call_create_pool(self, name, pool_type="dir", definition=None, opts=None):
        definition = definition if definition is not None else {"target.path": os.path.join(self.env.pools_dir, "x")}
        return self.manager().CreatePool(name, pool_type, sv(definition), sv(opts))

    # CreatePool ---------------------------------------------------------------------------------
    def test_create_pool_refuses_bad_names(self):
        for what, name in BAD_NAMES:
            with self.subTest(what):
                self.refused("InvalidArgument", self.call_create_pool, name, mentions=["name"])

    def test_create_pool_refuses_a_taken_name(self):
        self.refused("AlreadyExists", self.call_create_pool, "good", mentions=["good"])

    def test_create_pool_refuses_an_unknown_pool_type(self):
        self.refused("InvalidArgument", self.call_create_pool, "typo", "dirr", mentions=["dirr"])

    def test_create_pool_refuses_unknown_definition_and_option_keys(self):
        target = os.path.join(self.env.pools_dir, "x")
        self.refused("InvalidArgument", self.call_create_pool, "keys", "dir", {"target.path": target, "target.paht": "y"},
                     mentions=["target.paht"])
        self.refused("InvalidArgument", self.call_create_pool, "keys", "dir", {"target.path": target}, sv(bulid=True),
                     mentions=["bulid"])

    def test_create_pool_refuses_values_of_the_wrong_type(self):
        self.refused("InvalidArgument", self.call_create_pool, "types", "dir", {"target.path": dbus.UInt32(7)},
                     mentions=["target.path"])
        target = os.path.join(self.env.pools_dir, "x")
        self.refused("InvalidArgument", self.call_create_pool, "types", "dir", {"target.path": target},
                     sv(start="yes"), mentions=["start"])
        self.refused("InvalidArgument", self.call_create_pool, "types", "dir", {"target.path": target},
                     sv(autostart=dbus.Int32(1)), mentions=["autostart"])

    # CreateVolume -------------------------------------------------------------------------------
    def create_volume(self, name, capacity=16 * MiB, opts=None):
        return self.pool("good").CreateVolume(name, dbus.UInt64(capacity), sv(opts))

    def test_create_volume_refuses_bad_names(self):
        for what, name in BAD_NAMES:
            with self.subTest(what):
                self.refused("InvalidArgument", self.create_volume, name, mentions=["name"])

    def test_create_volume_accepts_a_255_byte_name(self):
        name = "v" * 255
        path = self.create_volume(name, opts=sv(format="raw"))
        self.assertEqual(str(path), volume_path("good", name))
        self.assertIn(name, self.virsh_volumes("good"))
        self.volume("good", name).Delete(sv())

    def test_create_volume_refuses_a_taken_name(self):
        self.refused("AlreadyExists", self.create_volume, "existing.qcow2", mentions=["existing.qcow2"])

    def test_create_volume_refuses_size_zero(self):
        self.refused("InvalidArgument", self.create_volume, "zero.qcow2", 0, mentions=["zero.qcow2"])

    def test_create_volume_refuses_sizes_no_pool_could_hold(self):
        for what, size in HUGE_SIZES:
            with self.subTest(what):
                self.refused("InvalidArgument", self.create_volume, "huge.qcow2", size, mentions=["huge.qcow2"])

    def test_create_volume_refuses_unknown_option_keys(self):
        self.refused("InvalidArgument", self.create_volume, "opts.qcow2", 16 * MiB, sv(fromat="raw"),
                     mentions=["fromat"])

    def test_create_volume_refuses_options_of_the_wrong_type_or_value(self):
        cases = [
            ("format", dbus.UInt32(1)),
            ("format", "vmdk-ish"),
            ("preallocation", "sometimes"),
            ("preallocation", True),
            ("lazy_refcounts", "yes"),
            ("cluster_size", "64k"),
        ]
        for key, value in cases:
            with self.subTest(f"{key}={value!r}"):
                self.refused("InvalidArgument", self.create_volume, "opts.qcow2", 16 * MiB, sv(**{key: value}),
                             mentions=[key])

    # Volume.Resize and lookups ------------------------------------------------------------------
    def test_resize_refuses_zero_huge_and_unknown_options(self):
        volume = self.volume("good", "existing.qcow2")
        self.refused("InvalidArgument", volume.Resize, dbus.UInt64(0), sv(), mentions=["existing.qcow2"])
        self.refused("InvalidArgument", volume.Resize, dbus.UInt64(2**63), sv(), mentions=["existing.qcow2"])
        self.refused("InvalidArgument", volume.Resize, dbus.UInt64(32 * MiB), sv(shirnk=True),
                     mentions=["shirnk"])
        self.refused("InvalidArgument", volume.Resize, dbus.UInt64(32 * MiB), sv(shrink="yes"),
                     mentions=["shrink"])
        self.assertEqual(self.properties(volume_path("good", "existing.qcow2"), VOLUME)["Capacity"], 16 * MiB)

    def test_unknown_option_keys_are_refused_by_pool_methods(self):
        self.refused("InvalidArgument", self.pool("good").Refresh, sv(deep=True), mentions=["deep"])
        self.refused("InvalidArgument", self.pool("good").Stop, sv(force=True), mentions=["force"])

    def test_lookup_of_a_path_that_is_no_volume_is_not_found(self):
        missing = os.path.join(self.target, "no-such-volume.qcow2")
        self.refused("NotFound", self.manager().LookupVolumeByPath, missing, sv(), mentions=[missing])

    def test_a_pool_that_does_not_exist_is_not_found(self):
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.interface(pool_path("no-such-pool"), "org.vmstor.Storage1.Pool").Refresh(sv())
        # sd-bus answers UnknownObject for a path nobody serves; the daemon's own answer is NotFound.
        self.assertIn(raised.exception.get_dbus_name(),
                      ["org.vmstor.Storage1.Error.NotFound", "org.freedesktop.DBus.Error.UnknownObject"])
        self.assertNothingChanged()


if __name__ == "__main__":
    main()
