#!/usr/bin/python3
"""Volume files and backing files cannot lead outside the pools: names with '..' or '/', symlinks placed
in a pool directory, and backing files outside every pool's target directory (allowed only with
manage-pools)."""

import os
import shutil
import tempfile

import dbus

from polkit_harness import (LIBVIRT_ACCOUNT, VOLUMES_ACCOUNT, PolkitTest, iface, main, pool_path,  # noqa: F401
                            sv, unix_fd, volume_path)
from harness import VOLUME

POOL = "org.vmstor.Storage1.Pool"
NOT_AUTHORIZED = "org.vmstor.Storage1.Error.NotAuthorized"
MiB = 1024 * 1024


class Paths(PolkitTest):
    pool_name = "fenced"

    @classmethod
    def setUpEnvironment(cls):
        super().setUpEnvironment()
        # Outside every pool, where the daemon's account could write: what an escape would reach.
        cls.outside = tempfile.mkdtemp(prefix="vmstor-outside.", dir="/var/tmp")
        os.chmod(cls.outside, 0o777)
        cls.victim = os.path.join(cls.outside, "victim.raw")
        with open(cls.victim, "wb") as f:
            f.write(b"precious" * 512)
        os.chmod(cls.victim, 0o666)
        cls.base = os.path.join(cls.outside, "base.qcow2")
        cls.run_qemu_img("create", "-q", "-f", "qcow2", cls.base, str(MiB))
        os.chmod(cls.base, 0o644)
        cls.pool(cls.pool_name).CreateVolume("inside-base.qcow2", dbus.UInt64(MiB), sv())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.outside, ignore_errors=True)
        super().tearDownClass()

    @staticmethod
    def run_qemu_img(*args):
        import subprocess
        subprocess.run(["qemu-img", *args], check=True, capture_output=True)

    def victim_unchanged(self):
        with open(self.victim, "rb") as f:
            self.assertEqual(f.read(), b"precious" * 512, "a file outside the pool was changed")

    def link_in_pool(self, name, target):
        link = self.pool_file(name)
        os.symlink(target, link)
        os.lchown(link, self.account.pw_uid, self.account.pw_gid)
        self.addCleanup(lambda: os.path.lexists(link) and os.unlink(link))
        return link

    # Names ---------------------------------------------------------------------------------------
    def test_names_with_dot_dot_or_slash_are_refused(self):
        pool = self.pool(self.pool_name)
        source = dbus.ObjectPath(volume_path(self.pool_name, "inside-base.qcow2"))
        for name in ("..", "../escape.qcow2", f"{self.outside}/abs.qcow2", "sub/../../escape.qcow2"):
            self.assertDBusError("InvalidArgument", pool.CreateVolume, name, dbus.UInt64(MiB), sv())
            self.assertDBusError("InvalidArgument", pool.CloneVolume, source, name, sv())
            self.assertDBusError("InvalidArgument", pool.ImportVolume, name, unix_fd(self.victim, os.O_RDONLY),
                                 sv(format="raw"))
        self.assertEqual(sorted(os.listdir(self.outside)), ["base.qcow2", "victim.raw"])
        self.assertFalse(os.path.exists(os.path.join(self.env.pools_dir, "escape.qcow2")))

    # Symlinks placed in the pool -----------------------------------------------------------------
    def test_a_dangling_symlink_is_not_followed_by_create_clone_or_import(self):
        outside_new = os.path.join(self.outside, "created-through-link.qcow2")
        self.link_in_pool("trap.qcow2", outside_new)
        pool = self.pool(self.pool_name)
        source = dbus.ObjectPath(volume_path(self.pool_name, "inside-base.qcow2"))
        self.assertDBusError("AlreadyExists", pool.CreateVolume, "trap.qcow2", dbus.UInt64(MiB), sv())
        self.assertDBusError("AlreadyExists", pool.CreateVolume, "trap.qcow2", dbus.UInt64(MiB),
                             sv(preallocation="falloc"))
        self.assertDBusError("AlreadyExists", pool.CloneVolume, source, "trap.qcow2", sv())
        self.assertDBusError("AlreadyExists", pool.ImportVolume, "trap.qcow2", unix_fd(self.victim, os.O_RDONLY),
                             sv(format="raw"))
        self.assertFalse(os.path.exists(outside_new), "a file was created outside the pool through a link")

    def test_a_symlinked_volume_is_not_written_or_read_through(self):
        self.link_in_pool("link.raw", self.victim)
        self.pool(self.pool_name).Refresh(sv())
        path = volume_path(self.pool_name, "link.raw")
        self.wait_object(path, VOLUME)  # libvirt lists a link to a regular file as a volume
        volume = self.interface(path, VOLUME)
        zeroes = os.path.join(self.scratch, "zeroes.raw")
        with open(zeroes, "wb") as f:
            f.write(bytes(4096))
        message = self.assertDBusError("NotAuthorized", volume.Upload, unix_fd(zeroes, os.O_RDONLY), sv(),
                                       mentions=["symbolic link"])
        self.assertIn("link.raw", message)
        self.assertDBusError("NotAuthorized", volume.Wipe, sv(), mentions=["symbolic link"])
        self.assertDBusError("NotAuthorized", self.pool(self.pool_name).CloneVolume, dbus.ObjectPath(path),
                             "copy-of-link.raw", sv(format="raw"), mentions=["symbolic link"])
        self.assertNotIn("copy-of-link.raw", self.volume_files())
        self.victim_unchanged()

    # Backing files -------------------------------------------------------------------------------
    def create_with_backing(self, user, name, backing):
        pool = iface(pool_path(self.pool_name), POOL)
        return self.call_as(user, (
            f"try:\n"
            f"    {pool}.CreateVolume({name!r}, dbus.UInt64({MiB}), sv(backing={backing!r}, "
            f"backing_format='qcow2'))\n"
            f"    print('ok')\n"
            f"except dbus.exceptions.DBusException as e:\n"
            f"    print(e.get_dbus_name())\n"
            f"    print(e.get_dbus_message())\n"))

    def test_a_backing_file_outside_every_pool_needs_manage_pools(self):
        got = self.create_with_backing(VOLUMES_ACCOUNT, "over-outside.qcow2", self.base)
        self.assertEqual(got[0], NOT_AUTHORIZED, got)
        self.assertIn("outside every pool", got[1])
        self.assertIn("manage-pools", got[1])
        self.assertNotIn("over-outside.qcow2", self.volume_files())
        # Through a symlink in the pool, or '..' from the pool, it is still outside.
        link = self.link_in_pool("base-link.qcow2", self.base)
        got = self.create_with_backing(VOLUMES_ACCOUNT, "over-link.qcow2", link)
        self.assertEqual(got[0], NOT_AUTHORIZED, got)
        got = self.create_with_backing(VOLUMES_ACCOUNT, "over-dots.qcow2",
                                       os.path.relpath(self.base, self.target))
        self.assertEqual(got[0], NOT_AUTHORIZED, got)
        # Inside the pool it needs only manage-volumes; with manage-pools, outside is allowed.
        inside = self.pool_file("inside-base.qcow2")
        self.assertEqual(self.create_with_backing(VOLUMES_ACCOUNT, "over-inside.qcow2", inside), ["ok"])
        self.assertEqual(self.create_with_backing(LIBVIRT_ACCOUNT, "over-outside-ok.qcow2", self.base), ["ok"])
        self.assertEqual(self.qemu_img_info(self.pool_file("over-outside-ok.qcow2"))["backing-filename"],
                         self.base)

    def test_rebase_onto_a_file_outside_every_pool_is_refused_without_manage_pools(self):
        path = volume_path(self.pool_name, "inside-base.qcow2")
        got = self.call_as(VOLUMES_ACCOUNT, (
            f"try:\n"
            f"    {iface(path, VOLUME)}.Rebase({self.base!r}, sv(backing_format='qcow2', unsafe=True))\n"
            f"    print('ok')\n"
            f"except dbus.exceptions.DBusException as e:\n"
            f"    print(e.get_dbus_name())\n"
            f"    print(e.get_dbus_message())\n"))
        self.assertEqual(got[0], NOT_AUTHORIZED, got)
        self.assertIn("outside every pool", got[1])
        self.assertNotIn("backing-filename", self.qemu_img_info(self.pool_file("inside-base.qcow2")))


if __name__ == "__main__":
    main()
