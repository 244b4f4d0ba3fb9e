#!/usr/bin/python3
"""No escalation through vmstord, written from the attacker's side against a real polkitd: a guest that
writes a qcow2 header naming a host file into its raw disk cannot make vmstord serve that file; a user
allowed to manage volumes cannot make a setuid file or give one away; a rule that limits a user to one pool
or to some volume names holds for calls that read one volume and create another."""

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import types

import dbus

from polkit_harness import (LIBVIRT_ACCOUNT, POOL_ACCOUNT, VOLUMES_ACCOUNT, PolkitTest, iface, main,  # noqa: F401
                            pool_path, sv, unix_fd, volume_path)
from harness import VOLUME
from jobs_harness import JOB_TIMEOUT

POOL = "org.vmstor.Storage1.Pool"
NOT_AUTHORIZED = "org.vmstor.Storage1.Error.NotAuthorized"
INVALID = "org.vmstor.Storage1.Error.InvalidArgument"
JOB = "org.vmstor.Storage1.Job"
MiB = 1024 * 1024
OTHER_POOL = "elsewhere"
# What the unit keeps of root's capabilities that matter here: without them the kernel itself would clear
# setuid bits on a write and refuse a chown, and the tests could not fail.
UNIT_CAPABILITIES = ("chown", "fowner", "fsetid")


class Escalation(PolkitTest):
    pool_name = "guarded"

    @classmethod
    def setUpEnvironment(cls):
        super().setUpEnvironment()
        # A host file outside every pool that the daemon's account can read: what a guest would steal.
        cls.outside = tempfile.mkdtemp(prefix="vmstor-secret.", dir="/var/tmp")
        os.chmod(cls.outside, 0o755)
        cls.secret = os.urandom(64 * 1024)
        cls.host_file = os.path.join(cls.outside, "host-secret")
        with open(cls.host_file, "wb") as f:
            f.write(cls.secret)
        os.chmod(cls.host_file, 0o644)
        cls.restart_daemon()
        cls.other_target = cls.create_pool(OTHER_POOL)
        for pool, name in ((cls.pool_name, "mine-a.qcow2"), (OTHER_POOL, "theirs.qcow2")):
            cls.pool(pool).CreateVolume(name, dbus.UInt64(4 * MiB), sv())

    @classmethod
    def restart_daemon(cls, *extra_args):
        cls.restart_vmstord(extra_args=extra_args, capabilities=UNIT_CAPABILITIES)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.outside, ignore_errors=True)
        super().tearDownClass()

    def call(self, user, statement):
        """Runs one statement as `user`; returns ['ok'] or [error name, message]."""
        return self.call_as(user, (
            f"try:\n"
            f"    {statement}\n"
            f"    print('ok')\n"
            f"except dbus.exceptions.DBusException as e:\n"
            f"    print(e.get_dbus_name())\n"
            f"    print(e.get_dbus_message().replace(chr(10), ' '))\n"))

    def upload(self, volume, source):
        job = self.volume(self.pool_name, volume).Upload(unix_fd(source, os.O_RDONLY), sv(wait=True),
                                                         timeout=JOB_TIMEOUT)
        self.assert_completed(job)

    def download(self, volume):
        out = os.path.join(self.scratch, volume + ".downloaded")
        with open(out, "wb"):
            pass
        os.chmod(out, 0o666)
        job = self.volume(self.pool_name, volume).Download(unix_fd(out, os.O_WRONLY), sv(wait=True),
                                                           timeout=JOB_TIMEOUT)
        self.assert_completed(job)
        with open(out, "rb") as f:
            return f.read()

    def guest_header(self, name):
        """What a guest can write to its own disk: a qcow2 header whose backing file is the host file."""
        image = os.path.join(self.scratch, name)
        self.qemu_img("create", "-q", "-f", "qcow2", "-b", self.host_file, "-F", "raw", image, str(MiB))
        with open(image, "rb") as f:
            return image, f.read()

    def settle(self):
        """Past the daemon's polls and a refresh: whatever libvirt probes now has been seen."""
        time.sleep(2.5)
        self.pool(self.pool_name).Refresh(sv())
        time.sleep(0.5)

    # A guest's disk content -------------------------------------------------------------------------
    def test_a_guest_cannot_make_vmstord_read_a_host_file(self):
        self.pool(self.pool_name).CreateVolume("guest.raw", dbus.UInt64(MiB), sv(format="raw"))
        image, header = self.guest_header("planted.qcow2")
        self.upload("guest.raw", image)
        self.settle()
        path = volume_path(self.pool_name, "guest.raw")
        props = self.properties(path, VOLUME)
        self.assertEqual(props["Format"], "raw", "the guest's content changed the volume's format")
        self.assertEqual(list(props["BackingChain"]), [], "the guest's content named a backing file")
        got = self.download("guest.raw")
        self.assertNotIn(self.secret[:4096], got, "Download served the host file")
        self.assertEqual(got[:len(header)], header, "Download did not return the volume's own bytes")
        job = self.pool(self.pool_name).CloneVolume(dbus.ObjectPath(path), "guest-copy.raw",
                                                   sv(format="raw", wait=True), timeout=JOB_TIMEOUT)
        self.assert_completed(job)
        with open(self.pool_file("guest-copy.raw"), "rb") as f:
            copy = f.read()
        self.assertNotIn(self.secret[:4096], copy, "CloneVolume copied the host file")
        self.assertEqual(copy[:len(header)], header)
        self.assertEqual(self.properties(volume_path(self.pool_name, "guest-copy.raw"), VOLUME)["Format"], "raw")

    def test_a_qcow2_made_by_another_tool_with_a_backing_file_outside_the_pools_needs_manage_pools(self):
        # First seen as such a qcow2 (copied in by hand): its chain leaves every pool.
        image, _ = self.guest_header("by-hand.qcow2")
        shutil.copy(image, self.pool_file("by-hand.qcow2"))
        self.give_to_pool("by-hand.qcow2")
        path = volume_path(self.pool_name, "by-hand.qcow2")
        self.assertEqual(self.properties(path, VOLUME)["Format"], "qcow2")
        volume = iface(path, VOLUME)
        out = os.path.join(self.scratch, "stolen")
        with open(out, "wb"):
            pass
        os.chmod(out, 0o666)
        for statement in (
                f"{volume}.Download(dbus.types.UnixFd(open({out!r}, 'wb')), sv(wait=True), timeout=60)",
                f"{volume}.Map(sv())",
                f"{iface(pool_path(self.pool_name), POOL)}.CloneVolume(dbus.ObjectPath({path!r}), "
                f"'stolen.raw', sv(format='raw', wait=True), timeout=60)",
                f"{volume}.Convert(dbus.ObjectPath({pool_path(self.pool_name)!r}), 'stolen2.raw', "
                f"sv(format='raw', wait=True), timeout=60)"):
            got = self.call(VOLUMES_ACCOUNT, statement)
            self.assertEqual(got[0], NOT_AUTHORIZED, f"{statement}: {got}")
        with open(out, "rb") as f:
            self.assertNotIn(self.secret[:4096], f.read())
        self.assertNotIn("stolen.raw", self.volume_files())
        self.assertNotIn("stolen2.raw", self.volume_files())
        # A pool manager (group libvirt) may: that is the host's own administrator's choice.
        self.assertEqual(self.call(LIBVIRT_ACCOUNT, f"{volume}.Map(sv())"), ["ok"])

    def test_the_format_on_record_outlives_a_restart(self):
        state = self.env.path("vmstord-state")
        os.makedirs(state, exist_ok=True)
        os.chown(state, self.account.pw_uid, self.account.pw_gid)
        self.restart_daemon("--state-dir", state)
        self.pool(self.pool_name).CreateVolume("kept.raw", dbus.UInt64(MiB), sv(format="raw"))
        image, _ = self.guest_header("planted-again.qcow2")
        self.upload("kept.raw", image)
        self.restart_daemon("--state-dir", state)
        self.wait_object(volume_path(self.pool_name, "kept.raw"), VOLUME)
        self.settle()
        props = self.properties(volume_path(self.pool_name, "kept.raw"), VOLUME)
        self.assertEqual(props["Format"], "raw")
        self.assertEqual(list(props["BackingChain"]), [])

    # Setuid files and files given away --------------------------------------------------------------
    def create(self, user, name, **options):
        pool = iface(pool_path(self.pool_name), POOL)
        values = ", ".join(f"{k}=dbus.UInt32({v})" if isinstance(v, int) else f"{k}={v!r}"
                           for k, v in options.items())
        return self.call(user, f"{pool}.CreateVolume({name!r}, dbus.UInt64({MiB}), sv({values}))")

    def test_a_volume_manager_cannot_make_a_setuid_file(self):
        for mode in (0o4755, 0o6777, 0o2755, 0o1777):
            got = self.create(VOLUMES_ACCOUNT, f"suid-{mode:o}.raw", format="raw", mode=mode)
            self.assertEqual(got[0], INVALID, f"mode {mode:o}: {got}")
            self.assertIn("setuid", got[1])
            self.assertNotIn(f"suid-{mode:o}.raw", self.volume_files())
        # Root is refused too: volume files never carry those bits.
        got = self.create("root", "suid-root.raw", format="raw", mode=0o4755)
        self.assertEqual(got[0], INVALID, got)

    def test_an_upload_clears_setuid_bits_that_a_volume_file_has(self):
        self.assertEqual(self.create(VOLUMES_ACCOUNT, "program.raw", format="raw", mode=0o755), ["ok"])
        os.chmod(self.pool_file("program.raw"), 0o6755)  # as another tool may have left it
        program = os.path.join(self.scratch, "program")
        shutil.copy("/usr/bin/id", program)
        path = volume_path(self.pool_name, "program.raw")
        got = self.call(VOLUMES_ACCOUNT, f"{iface(path, VOLUME)}.Upload(dbus.types.UnixFd(open({program!r}, 'rb')), "
                                         f"sv(wait=True), timeout=60)")
        self.assertEqual(got, ["ok"])
        mode = os.stat(self.pool_file("program.raw")).st_mode
        self.assertEqual(mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), 0, f"mode {mode:o}")

    def test_giving_a_volume_file_to_another_account_or_group_needs_manage_pools(self):
        got = self.create(VOLUMES_ACCOUNT, "for-root.raw", format="raw", owner=0)
        self.assertEqual(got[0], NOT_AUTHORIZED, got)
        got = self.create(VOLUMES_ACCOUNT, "for-root-group.raw", format="raw", group=0)
        self.assertEqual(got[0], NOT_AUTHORIZED, got)
        self.assertNotIn("for-root.raw", self.volume_files())
        self.assertNotIn("for-root-group.raw", self.volume_files())

    # Rules that limit a user to one pool or some names -----------------------------------------------
    def test_a_pool_limited_rule_holds_for_what_a_call_creates_and_reads(self):
        mine = iface(volume_path(self.pool_name, "mine-a.qcow2"), VOLUME)
        guarded, elsewhere = pool_path(self.pool_name), pool_path(OTHER_POOL)
        refused = {
            "convert into another pool":
                f"{mine}.Convert(dbus.ObjectPath({elsewhere!r}), 'mine-b.qcow2', sv(wait=True), timeout=60)",
            "convert to a name the rule does not give":
                f"{mine}.Convert(dbus.ObjectPath({guarded!r}), 'theirs-b.qcow2', sv(wait=True), timeout=60)",
            "overlay with a name the rule does not give": f"{mine}.CreateOverlay('theirs-over.qcow2', sv())",
            "clone from another pool":
                f"{iface(guarded, POOL)}.CloneVolume(dbus.ObjectPath("
                f"{volume_path(OTHER_POOL, 'theirs.qcow2')!r}), 'mine-c.qcow2', sv(wait=True), timeout=60)",
        }
        for what, statement in refused.items():
            got = self.call(POOL_ACCOUNT, statement)
            self.assertEqual(got[0], NOT_AUTHORIZED, f"{what}: {got}")
        self.assertNotIn("mine-b.qcow2", os.listdir(self.other_target))
        for name in ("theirs-b.qcow2", "theirs-over.qcow2", "mine-c.qcow2"):
            self.assertNotIn(name, self.volume_files())
        # What the rule does give still works.
        self.assertEqual(self.call(POOL_ACCOUNT, f"{mine}.CreateOverlay('mine-over.qcow2', sv())"), ["ok"])
        self.assertEqual(self.call(POOL_ACCOUNT, f"{mine}.Convert(dbus.ObjectPath({guarded!r}), 'mine-d.qcow2', "
                                                 f"sv(wait=True), timeout=60)"), ["ok"])

    # A hung polkitd --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def call_while_polkit_hangs(self, user, statement):
        """Stops polkitd and runs `statement` as `user`; inside the block its call waits in vmstord for
        polkit (`.process` runs until it is answered); on leaving, polkitd goes on and `.out` is what the
        client printed: 'ok' or the D-Bus error name."""
        call = types.SimpleNamespace(process=None, out=None)
        os.kill(self.env.polkitd_process.pid, signal.SIGSTOP)
        try:
            code = (self.client_prelude() + "print('calling', flush=True)\n"
                    f"try:\n    {statement}\n    print('ok')\n"
                    "except dbus.exceptions.DBusException as e:\n    print(e.get_dbus_name())\n")
            call.process = subprocess.Popen(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", code],
                                            stdout=subprocess.PIPE, text=True, cwd="/")
            self.assertEqual(call.process.stdout.readline().strip(), "calling")
            time.sleep(0.5)  # its call has reached vmstord, which now waits for polkit
            yield call
        finally:
            os.kill(self.env.polkitd_process.pid, signal.SIGCONT)
            if call.process is not None:
                call.out, _ = call.process.communicate(timeout=90)

    def test_a_hung_polkit_delays_only_the_calls_that_wait_on_it(self):
        path = volume_path(self.pool_name, "mine-a.qcow2")
        with self.call_while_polkit_hangs(VOLUMES_ACCOUNT, f"{iface(path, VOLUME)}.Info(sv(), timeout=60)") as call:
            # Root's reads and changes are answered meanwhile, while the other caller still waits.
            self.volume(self.pool_name, "mine-a.qcow2").Info(sv())
            self.manager().ListJobs(sv())
            self.pool(self.pool_name).GetXML(sv())
            self.assertIsNone(call.process.poll(), "the other caller was answered first: the bus waited for polkit")

    def test_a_hung_polkit_delays_a_property_change_and_nothing_else(self):
        path = pool_path(self.pool_name)
        properties = f"dbus.Interface(bus.get_object(BUS_NAME, {str(path)!r}), 'org.freedesktop.DBus.Properties')"
        wanted = {"warning": 0.61, "critical": 0.93}
        statement = f"{properties}.Set({POOL!r}, 'Thresholds', dbus.Dictionary({wanted!r}, signature='sd'), timeout=60)"
        with self.call_while_polkit_hangs(LIBVIRT_ACCOUNT, statement) as call:
            # Root is answered meanwhile (a property change of its own too), while the other caller waits.
            self.volume(self.pool_name, "mine-a.qcow2").Info(sv())
            self.pool(self.pool_name).GetXML(sv())
            self.set_pool_property("Autostart", dbus.Boolean(True))
            self.assertIsNone(call.process.poll(), "the other caller was answered first: the bus waited for polkit")
        self.assertEqual(call.out.strip(), "ok", "the property change was not made once polkit answered")
        self.assertEqual(dict(self.get_pool_property("Thresholds")), wanted)
        self.assertTrue(self.get_pool_property("Autostart"))

    def test_a_property_change_is_authorized_and_type_checked(self):
        path = pool_path(self.pool_name)
        properties = f"dbus.Interface(bus.get_object(BUS_NAME, {str(path)!r}), 'org.freedesktop.DBus.Properties')"
        before = dict(self.get_pool_property("Thresholds"))
        got = self.attempt(VOLUMES_ACCOUNT,
                           f"{properties}.Set({POOL!r}, 'Thresholds', dbus.Dictionary({{'warning': 0.5}}, "
                           "signature='sd'))",
                           f"{properties}.Set({POOL!r}, 'Autostart', dbus.Boolean(False))")
        self.assertEqual(got, [NOT_AUTHORIZED, NOT_AUTHORIZED])
        # A value that cannot be right is refused before polkit is asked, whoever asks.
        got = self.attempt(VOLUMES_ACCOUNT,
                           f"{properties}.Set({POOL!r}, 'Thresholds', dbus.Dictionary({{'loud': 0.5}}, "
                           "signature='sd'))")
        self.assertEqual(got, [INVALID])
        self.assertEqual(dict(self.get_pool_property("Thresholds")), before)
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.set_pool_property("Autostart", dbus.String("yes"))
        self.assertEqual(raised.exception.get_dbus_name(), "org.freedesktop.DBus.Error.InvalidArgs")
        self.assertIn("Autostart", raised.exception.get_dbus_message())
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.set_pool_property("Thresholds", dbus.Dictionary({"warning": 0.5, "loud": 0.9}, signature="sd"))
        self.assertEqual(raised.exception.get_dbus_name(), INVALID)
        self.assertIn("loud", raised.exception.get_dbus_message())
        # A read-only property stays read-only.
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.set_pool_property("Name", dbus.String("renamed"))
        self.assertEqual(raised.exception.get_dbus_name(), "org.freedesktop.DBus.Error.PropertyReadOnly")

    def test_a_schedule_is_checked_then_authorized(self):
        volume = iface(volume_path(self.pool_name, "mine-a.qcow2"), VOLUME)
        got = self.attempt(VOLUMES_ACCOUNT,
                           f"{volume}.SetSchedule(sv(**{{'snapshot.calendar': 'daily'}}), sv())",
                           f"{volume}.SetSchedule(sv(**{{'snapshot.calendar': 'every full moon'}}), sv())",
                           f"{volume}.RunSchedule(sv())")
        # Snapshots need manage-snapshots, which this account lacks; a calendar systemd cannot read is
        # refused before polkit is asked.
        self.assertEqual(got, [NOT_AUTHORIZED, INVALID, NOT_AUTHORIZED])
        self.assertEqual(self.properties(volume_path(self.pool_name, "mine-a.qcow2"), VOLUME)["Schedule"], {})

    def set_pool_property(self, name, value):
        self.set_property(pool_path(self.pool_name), POOL, name, value)

    def get_pool_property(self, name):
        return self.properties(pool_path(self.pool_name), POOL)[name]

    # One caller cannot exhaust the daemon ---------------------------------------------------------
    def test_one_caller_meets_a_bound_on_its_jobs_and_the_daemon_keeps_serving_others(self):
        path = volume_path(self.pool_name, "mine-a.qcow2")
        volume = iface(path, VOLUME)
        got = self.call_as(VOLUMES_ACCOUNT, (
            "jobs, errors = [], []\n"
            "for n in range(24):\n"
            "    try:\n"
            f"        jobs.append({volume}.Download(dbus.types.UnixFd(open('/dev/null', 'wb')), "
            "sv(rate_limit=dbus.UInt64(1))))\n"
            "    except dbus.exceptions.DBusException as e:\n"
            "        errors.append((e.get_dbus_name(), e.get_dbus_message()))\n"
            "print(len(jobs))\n"
            "for name, message in errors:\n"
            "    print(name, '|', message.replace(chr(10), ' '))\n"
            "for job in jobs:\n"
            f"    dbus.Interface(bus.get_object(BUS_NAME, job), {JOB!r}).Cancel(sv())\n"))
        self.assertEqual(got[0], "16", got)
        self.assertEqual(len(got), 1 + 24 - 16, got)
        for line in got[1:]:
            self.assertTrue(line.startswith("org.vmstor.Storage1.Error.LimitExceeded"), line)
            self.assertIn("16", line)
        # Meanwhile and after, other callers are served, and the same caller may start jobs again.
        job = self.pool(self.pool_name).CloneVolume(dbus.ObjectPath(path), "after-limit.qcow2",
                                                   sv(wait=True), timeout=JOB_TIMEOUT)
        self.assert_completed(job)

    def test_calls_waiting_for_polkit_are_bounded_per_caller(self):
        path = volume_path(self.pool_name, "mine-a.qcow2")
        waiting = None
        os.kill(self.env.polkitd_process.pid, signal.SIGSTOP)
        try:
            code = (self.client_prelude() +
                    "import dbus.mainloop.glib\nfrom gi.repository import GLib\n"
                    f"volume = {iface(path, VOLUME)}\n"
                    "answers = []\n"
                    "loop = GLib.MainLoop()\n"
                    "def error(e):\n"
                    "    answers.append(e.get_dbus_name())\n"
                    "    if answers.count('org.vmstor.Storage1.Error.LimitExceeded') == 8:\n"
                    "        print('\\n'.join(answers), flush=True)\n"
                    "        loop.quit()\n"
                    "for n in range(40):\n"
                    "    volume.Info(sv(), reply_handler=lambda *a: answers.append('ok'), error_handler=error, "
                    "timeout=60)\n"
                    "GLib.timeout_add_seconds(30, loop.quit)\n")
            code = code.replace("import sys, dbus\n", "import sys, dbus, dbus.mainloop.glib\n"
                                "dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)\n", 1)
            code += "loop.run()\n"
            waiting = subprocess.Popen(["runuser", "-u", VOLUMES_ACCOUNT, "--", "/usr/bin/python3", "-c", code],
                                       stdout=subprocess.PIPE, text=True, cwd="/")
            first = [waiting.stdout.readline().strip() for _ in range(8)]
            self.assertEqual(first, ["org.vmstor.Storage1.Error.LimitExceeded"] * 8,
                             "the calls over the bound were not refused at once while polkit hung")
            # Root is answered meanwhile.
            self.volume(self.pool_name, "mine-a.qcow2").Info(sv())
        finally:
            os.kill(self.env.polkitd_process.pid, signal.SIGCONT)
            if waiting is not None:
                waiting.communicate(timeout=60)


if __name__ == "__main__":
    main()
