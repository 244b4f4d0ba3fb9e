#!/usr/bin/python3
"""Pools: made with virsh they appear on D-Bus, made on D-Bus they are libvirt's, CreatePool undoes a
failed creation, and the Pool properties are libvirt's view and announce their changes."""

import os
import subprocess

import dbus

from harness import EVENT_TIMEOUT, MANAGER, POOL, ROOT, IntegrationTest, main, pool_path, sv


class PoolTests(IntegrationTest):
    def test_pool_made_with_virsh_appears_and_its_removal_disappears(self):
        target = os.path.join(self.env.pools_dir, "virsh-made")
        self.virsh("pool-define-as", "virsh-made", "dir", "--target", target)
        path = pool_path("virsh-made")
        added = self.signals.wait_added(path, POOL)
        self.assertIsNotNone(added, f"no InterfacesAdded for {path} within {EVENT_TIMEOUT} s of pool-define")
        self.assertEqual(added[2][POOL]["Name"], "virsh-made")
        self.assertFalse(added[2][POOL]["Active"])

        self.virsh("pool-build", "virsh-made")
        self.virsh("pool-start", "virsh-made")
        self.assertIsNotNone(self.signals.wait_for(
            lambda e: e[0] == "changed" and e[1] == path and e[3].get("Active") is True, EVENT_TIMEOUT),
            "no PropertiesChanged Active=true after pool-start")
        self.assertEqual(self.properties(path, POOL)["State"], "running")

        self.virsh("pool-destroy", "virsh-made")
        self.virsh("pool-undefine", "virsh-made")
        self.assertIsNotNone(self.signals.wait_removed(path, POOL),
                             f"no InterfacesRemoved for {path} within {EVENT_TIMEOUT} s of pool-undefine")
        self.assertNotIn(path, self.managed_objects())

    def test_create_pool_is_seen_by_virsh_and_undefine_removes_it(self):
        target = self.create_pool("made-on-dbus")
        self.assertIn("made-on-dbus", self.virsh_pools())
        info = self.virsh_pool_info("made-on-dbus")
        self.assertEqual(info["State"], "running")
        self.assertEqual(info["Autostart"], "yes")  # build, start and autostart default to true
        self.assertTrue(os.path.isdir(target))
        xml = self.virsh_xml("pool-dumpxml", "made-on-dbus")
        self.assertEqual(xml.get("type"), "dir")
        self.assertEqual(xml.findtext("target/path"), target)

        pool = self.pool("made-on-dbus")
        pool.Stop(sv())
        self.assertEqual(self.virsh_pool_info("made-on-dbus")["State"], "inactive")
        pool.Undefine(sv())
        self.assertNotIn("made-on-dbus", self.virsh_pools())
        self.assertIsNotNone(self.signals.wait_removed(pool_path("made-on-dbus"), POOL))

    def test_create_pool_with_options_false_only_defines(self):
        self.create_pool("only-defined", build=False, start=False, autostart=False)
        info = self.virsh_pool_info("only-defined")
        self.assertEqual((info["State"], info["Autostart"]), ("inactive", "no"))
        props = self.properties(pool_path("only-defined"), POOL)
        self.assertEqual((props["State"], props["Active"], props["Autostart"]), ("inactive", False, False))
        self.pool("only-defined").Undefine(sv())

    def assert_create_pool_rolls_back(self, name, target, options):
        before = self.libvirt_state()
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.manager().CreatePool(name, "dir", sv({"target.path": target}), sv(options))
        self.assertIn(raised.exception.get_dbus_name(),
                      ["org.vmstor.Storage1.Error.LibvirtError", "org.vmstor.Storage1.Error.Failed"])
        self.assertIn(name, raised.exception.get_dbus_message())
        self.assertEqual(self.libvirt_state(), before, "a failed CreatePool left libvirt changed")
        self.assertNotIn(name, self.virsh_pools())
        self.assertNotIn(pool_path(name), self.managed_objects())

    def test_create_pool_undoes_the_definition_when_build_fails(self):
        # The bus directory belongs to root: the account's libvirtd cannot make the target in it.
        self.assert_create_pool_rolls_back("build-fails", self.env.path("bus", "no-permission", "pool"), {})

    def test_create_pool_undoes_the_definition_when_start_fails(self):
        missing = os.path.join(self.env.pools_dir, "never-built")
        self.assert_create_pool_rolls_back("start-fails", missing, {"build": False})
        self.assertFalse(os.path.exists(missing))

    def test_pool_properties_match_virsh(self):
        target = self.create_pool("described")
        path = pool_path("described")
        pool = self.pool("described")
        pool.Refresh(sv())
        props = self.properties(path, POOL)
        info = self.virsh_pool_info("described")
        xml = self.virsh_xml("pool-dumpxml", "described")
        self.assertEqual(props["Name"], "described")
        self.assertEqual(props["UUID"], info["UUID"])
        self.assertEqual(props["Type"], "dir")
        self.assertEqual(props["State"], info["State"])
        self.assertTrue(props["Active"])
        self.assertTrue(props["Persistent"])
        self.assertEqual(props["Autostart"], info["Autostart"] == "yes")
        self.assertEqual(props["Capacity"], int(info["Capacity"]))
        self.assertEqual(props["Allocation"], int(info["Allocation"]))
        self.assertEqual(props["Available"], int(info["Available"]))
        self.assertEqual(props["TargetPath"], xml.findtext("target/path"))
        self.assertEqual(props["TargetPath"], target)
        self.assertIn("<name>described</name>", pool.GetXML(sv()))

    def test_autostart_set_on_dbus_reaches_libvirt_and_emits_properties_changed(self):
        self.create_pool("autostarted", autostart=False)
        path = pool_path("autostarted")
        self.set_property(path, POOL, "Autostart", dbus.Boolean(True))
        changed = self.signals.wait_changed(path, POOL, "Autostart")
        self.assertIsNotNone(changed, "no PropertiesChanged for Autostart")
        # EmitsChangedSignal=true (the XML): the new value comes with the signal, not as invalidated.
        self.assertIn("Autostart", changed[3], f"Autostart came without its value: {changed}")
        self.assertIs(changed[3]["Autostart"], True)
        self.assertEqual(self.virsh_pool_info("autostarted")["Autostart"], "yes")
        self.signals.clear()
        self.set_property(path, POOL, "Autostart", dbus.Boolean(False))
        changed = self.signals.wait_changed(path, POOL, "Autostart")
        self.assertIsNotNone(changed, "no PropertiesChanged for Autostart")
        self.assertIs(changed[3].get("Autostart"), False, f"Autostart came without its value False: {changed}")
        self.assertEqual(self.virsh_pool_info("autostarted")["Autostart"], "no")
        self.assertFalse(self.properties(path, POOL)["Autostart"])

    def test_refresh_after_a_change_on_disk_emits_properties_changed(self):
        target = self.create_pool("refreshed")
        path = pool_path("refreshed")
        before = self.properties(path, POOL)["Allocation"]
        # 8 MiB of real data on the pool's file system, behind libvirt's back.
        subprocess.run(["dd", "if=/dev/urandom", f"of={target}/written-behind", "bs=1M", "count=8",
                        "status=none", "conv=fsync"], check=True)
        self.signals.clear()
        self.pool("refreshed").Refresh(sv())
        self.assertIsNotNone(self.signals.wait_changed(path, POOL, "Allocation"),
                             "no PropertiesChanged for Allocation after Refresh")
        after = self.properties(path, POOL)
        self.assertEqual(after["Allocation"], int(self.virsh_pool_info("refreshed")["Allocation"]))
        self.assertNotEqual(after["Allocation"], before)

    def test_define_pool_xml_then_start_stop_delete_undefine(self):
        target = os.path.join(self.env.pools_dir, "from-xml")
        xml = f"<pool type='dir'><name>from-xml</name><target><path>{target}</path></target></pool>"
        path = self.manager().DefinePoolXML(xml, sv())
        self.assertEqual(str(path), pool_path("from-xml"))
        self.assertEqual(self.virsh_pool_info("from-xml")["State"], "inactive")
        pool = self.pool("from-xml")
        os.makedirs(target)
        os.chown(target, self.env.user.pw_uid, self.env.user.pw_gid)
        pool.Start(sv())
        self.assertEqual(self.virsh_pool_info("from-xml")["State"], "running")
        self.assertIsNotNone(self.signals.wait_for(
            lambda e: e[0] == "changed" and e[1] == path and e[3].get("State") == "running", EVENT_TIMEOUT))
        pool.Stop(sv())
        self.assertEqual(self.virsh_pool_info("from-xml")["State"], "inactive")
        pool.Delete(sv())
        self.assertFalse(os.path.exists(target), "Delete left the pool's directory")
        pool.Undefine(sv())
        self.assertNotIn("from-xml", self.virsh_pools())

    def test_pool_capabilities_name_the_dir_type(self):
        capabilities = self.manager().GetPoolCapabilities(sv())
        self.assertIn("dir", capabilities)
        self.assertTrue(capabilities["dir"]["supported"])

    def test_manager_properties(self):
        props = self.properties(ROOT, MANAGER)
        self.assertTrue(props["Connected"])
        self.assertIn(props["LibvirtURI"], [self.env.uri, self.virsh("uri").stdout.strip()])
        self.assertTrue(props["Version"])
        self.assertTrue(props["LibvirtVersion"])
        self.assertIn("dir", props["PoolTypes"])


if __name__ == "__main__":
    main()
