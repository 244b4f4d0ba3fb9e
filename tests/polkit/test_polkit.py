#!/usr/bin/python3
"""Per-caller authorization against a real polkitd on the private bus, with the project's action and rule
files: what an unprivileged account, a member of the group libvirt and root may do, job Cancel by another
uid, interactive authorization, and what happens while polkit is away."""

import os
import subprocess
import time

import dbus

from polkit_harness import (LIBVIRT_ACCOUNT, OTHER_ACCOUNT, VOLUMES_ACCOUNT, PolkitTest, iface, main,  # noqa: F401
                            pool_path, sv, volume_path, write_random_file)
from harness import MANAGER, OBJECT_MANAGER, ROOT, VOLUME  # noqa: E402

JOB = "org.vmstor.Storage1.Job"
NOT_AUTHORIZED = "org.vmstor.Storage1.Error.NotAuthorized"
MiB = 1024 * 1024
UNREACHABLE = "polkit did not answer"


class Authorization(PolkitTest):
    @classmethod
    def setUpEnvironment(cls):
        super().setUpEnvironment()
        cls.pool(cls.pool_name).CreateVolume("shared.qcow2", dbus.UInt64(16 * MiB), sv())
        write_random_file(os.path.join(cls.target, "data.raw"), 8 * MiB)

    def volume_expr(self, name):
        return iface(volume_path(self.pool_name, name), VOLUME)

    def test_an_unprivileged_account_may_read(self):
        got = self.attempt(OTHER_ACCOUNT,
                           f"{iface(ROOT, OBJECT_MANAGER)}.GetManagedObjects()",
                           f"{self.volume_expr('shared.qcow2')}.Info(sv())")
        self.assertEqual(got, ["ok", "ok"])

    def test_an_unprivileged_account_may_change_nothing(self):
        before = self.pool_state()
        pool = iface(pool_path(self.pool_name), "org.vmstor.Storage1.Pool")
        target = os.path.join(self.env.pools_dir, "other-pool")
        got = self.attempt(
            OTHER_ACCOUNT,
            f"{pool}.CreateVolume('other.qcow2', dbus.UInt64(1048576), sv())",
            f"{self.volume_expr('shared.qcow2')}.Delete(sv())",
            f"{iface(ROOT, MANAGER)}.CreatePool('other-pool', 'dir', sv(**{{'target.path': {target!r}}}), sv())",
            f"{self.volume_expr('shared.qcow2')}.CreateSnapshot('snap', sv())",
            f"{self.volume_expr('shared.qcow2')}.Resize(dbus.UInt64(33554432), sv())")
        self.assertEqual(got, [NOT_AUTHORIZED] * 5)
        self.assertEqual(self.pool_state(), before)
        self.assertNotIn("other-pool", self.virsh_pools())
        self.assertEqual(self.properties(volume_path(self.pool_name, "shared.qcow2"), VOLUME)["Capacity"], 16 * MiB)

    def test_a_member_of_group_libvirt_may_manage(self):
        pool = iface(pool_path(self.pool_name), "org.vmstor.Storage1.Pool")
        target = os.path.join(self.env.pools_dir, "libvirt-pool")
        got = self.attempt(
            LIBVIRT_ACCOUNT,
            f"{pool}.CreateVolume('member.qcow2', dbus.UInt64(1048576), sv())",
            f"{self.volume_expr('member.qcow2')}.CreateSnapshot('snap', sv())",
            f"{self.volume_expr('member.qcow2')}.Delete(sv())",
            f"{iface(ROOT, MANAGER)}.CreatePool('libvirt-pool', 'dir', sv(**{{'target.path': {target!r}}}), sv())")
        try:
            self.assertEqual(got, ["ok"] * 4)
            self.assertIn("libvirt-pool", self.virsh_pools())
            self.assertNotIn("member.qcow2", self.volume_files())
        finally:
            if "libvirt-pool" in self.virsh_pools():
                self.pool("libvirt-pool").Stop(sv())
                self.pool("libvirt-pool").Undefine(sv())

    def test_root_may_manage_while_polkit_runs(self):
        path = self.pool(self.pool_name).CreateVolume("by-root.qcow2", dbus.UInt64(MiB), sv())
        self.interface(path, VOLUME).CreateSnapshot("snap", sv())
        self.interface(path, VOLUME).Delete(sv())
        self.assertNotIn("by-root.qcow2", self.volume_files())

    def slow_job(self, name):
        """A clone of data.raw slowed down so that it runs for the whole test; cancelled by the caller."""
        self.pool(self.pool_name).Refresh(sv())
        self.wait_object(volume_path(self.pool_name, "data.raw"), VOLUME)
        source = dbus.ObjectPath(volume_path(self.pool_name, "data.raw"))
        return str(self.pool(self.pool_name).CloneVolume(
            source, name, sv(format="raw", rate_limit=dbus.UInt64(64 * 1024))))

    def test_cancel_of_a_job_by_another_unprivileged_uid_is_refused(self):
        job = self.slow_job("guarded-copy.raw")
        try:
            self.assertEqual(self.attempt(OTHER_ACCOUNT, f"{iface(job, JOB)}.Cancel(sv())"), [NOT_AUTHORIZED])
            self.assertEqual(self.job(job)["State"], "running")
            # manage-volumes (here through the group libvirt) may cancel another's job.
            self.assertEqual(self.attempt(LIBVIRT_ACCOUNT, f"{iface(job, JOB)}.Cancel(sv())"), ["ok"])
        finally:
            if self.job(job)["State"] == "running":
                self.interface(job, JOB).Cancel(sv())
        self.assertEqual(self.wait_job(job)["State"], "cancelled")

    def test_no_user_interaction_is_refused_at_once(self):
        pool = iface(pool_path(self.pool_name), "org.vmstor.Storage1.Pool")
        got = self.attempt(OTHER_ACCOUNT, f"{pool}.CreateVolume('quiet.qcow2', dbus.UInt64(1048576), "
                                          f"sv(**{{'auth.no_user_interaction': True}}))")
        self.assertEqual(got, [NOT_AUTHORIZED])
        self.assertNotIn("quiet.qcow2", self.volume_files())

    def interactive_client(self, options, interactive, hold=False, user=OTHER_ACCOUNT):
        """The code of a client that, as `user` with an authentication agent registered for its own process,
        calls CreateVolume through GDBus (which can set ALLOW_INTERACTIVE_AUTHORIZATION); the agent records
        what polkitd asks it and dismisses the request (with `hold`: prints 'asked ACTION' and dismisses it
        only once a line arrives on its standard input). Prints the actions asked for, then the outcome."""
        return f"""
import os, sys
import dbus.service, dbus.mainloop.glib
from gi.repository import Gio, GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
agent_bus = dbus.bus.BusConnection({self.env.bus_address!r})  # after the main loop is set: it serves the agent
asked = []
def dismissal():
    return dbus.exceptions.DBusException('dismissed by the test agent',
                                         name='org.freedesktop.PolicyKit1.Error.Cancelled')
def dismiss_when_told(source, condition, reply_error):
    sys.stdin.readline()
    reply_error(dismissal())
    return False
class Agent(dbus.service.Object):
    @dbus.service.method('org.freedesktop.PolicyKit1.AuthenticationAgent', in_signature='sssa{{ss}}sa(sa{{sv}})',
                         async_callbacks=('reply', 'reply_error'))
    def BeginAuthentication(self, action_id, message, icon, details, cookie, identities, reply, reply_error):
        asked.append(str(action_id))
        if not {hold!r}:
            reply_error(dismissal())
            return
        print('asked', action_id, flush=True)
        GLib.io_add_watch(sys.stdin, GLib.IO_IN, dismiss_when_told, reply_error)
    @dbus.service.method('org.freedesktop.PolicyKit1.AuthenticationAgent', in_signature='s')
    def CancelAuthentication(self, cookie):
        pass
Agent(agent_bus, '/vmstortest/agent')
with open('/proc/self/stat') as f:
    start_time = int(f.read().rsplit(')', 1)[1].split()[19])
subject = ('unix-process', {{'pid': dbus.UInt32(os.getpid()), 'start-time': dbus.UInt64(start_time),
                             'uid': dbus.Int32(os.getuid())}})
dbus.Interface(agent_bus.get_object('org.freedesktop.PolicyKit1', '/org/freedesktop/PolicyKit1/Authority'),
               'org.freedesktop.PolicyKit1.Authority').RegisterAuthenticationAgent(subject, 'C', '/vmstortest/agent')
gdbus = Gio.DBusConnection.new_for_address_sync({self.env.bus_address!r},
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
flags = Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION if {interactive!r} else Gio.DBusCallFlags.NONE
loop = GLib.MainLoop()
outcome = []
def done(connection, result):
    try:
        connection.call_finish(result)
        outcome.append('ok')
    except GLib.Error as e:
        outcome.append(Gio.DBusError.get_remote_error(e))
    loop.quit()
gdbus.call(BUS_NAME, path, 'org.vmstor.Storage1.Pool', 'CreateVolume',
           GLib.Variant('(sta{{sv}})', ('asked.qcow2', 1048576, {options})), None, flags, 60000, None, done)
loop.run()
print(','.join(asked))
print(outcome[0])
"""

    def interactive_attempt(self, options, interactive, user=OTHER_ACCOUNT):
        return self.call_as(user, self.interactive_client(options, interactive))

    def held_client(self):
        """An interactive CreateVolume as OTHER_ACCOUNT whose agent holds the request until told (a line on
        its standard input), as a user typing a password would."""
        argv = ["runuser", "-u", OTHER_ACCOUNT, "--", "/usr/bin/python3", "-c",
                self.client_prelude() + self.interactive_client("{}", interactive=True, hold=True)]
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd="/")

    def test_the_bus_is_served_while_a_caller_authenticates(self):
        # The agent holds the request as a user typing a password would; meanwhile other calls are answered
        # (each within the D-Bus client's 25 s default timeout, far less than the 120 s a pending
        # authentication may take), and the held call ends when the agent gives up.
        client = self.held_client()
        try:
            self.assertEqual(client.stdout.readline().split(), ["asked", "org.vmstor.storage1.manage-volumes"],
                             client.stderr.read() if client.poll() is not None else "")
            self.assertIn(volume_path(self.pool_name, "shared.qcow2"),
                          self.interface(ROOT, OBJECT_MANAGER).GetManagedObjects())
            self.assertEqual(self.properties(ROOT, MANAGER)["Connected"], True)
            self.assertEqual(self.attempt(OTHER_ACCOUNT, f"{self.volume_expr('shared.qcow2')}.Info(sv())",
                                          f"{iface(ROOT, MANAGER)}.ListJobs(sv())"), ["ok", "ok"])
            pool = iface(pool_path(self.pool_name), "org.vmstor.Storage1.Pool")
            self.assertEqual(self.attempt(LIBVIRT_ACCOUNT, f"{pool}.CreateVolume('meanwhile.qcow2', "
                                                           f"dbus.UInt64(1048576), sv())",
                                          f"{self.volume_expr('meanwhile.qcow2')}.Delete(sv())"), ["ok", "ok"])
            client.stdin.write("dismiss\n")
            client.stdin.flush()
            out, err = client.communicate(timeout=60)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        self.assertEqual(client.returncode, 0, err)
        self.assertEqual(out.splitlines(), ["org.vmstor.storage1.manage-volumes", NOT_AUTHORIZED])
        self.assertNotIn("asked.qcow2", self.volume_files())
        self.assertNotIn("meanwhile.qcow2", self.volume_files())

    def test_a_caller_that_leaves_while_authenticating_leaves_the_daemon_serving(self):
        client = self.held_client()
        try:
            self.assertEqual(client.stdout.readline().split(), ["asked", "org.vmstor.storage1.manage-volumes"])
        finally:
            client.kill()
            client.communicate()
        self.assertEqual(self.attempt(OTHER_ACCOUNT, f"{self.volume_expr('shared.qcow2')}.Info(sv())"), ["ok"])
        self.assertNotIn("asked.qcow2", self.volume_files())
        self.assertIsNone(self.env.vmstord_process.poll())

    def test_an_interactive_call_that_polkit_allows_at_once_runs(self):
        got = self.interactive_attempt("{}", interactive=True, user=VOLUMES_ACCOUNT)
        try:
            self.assertEqual(got, ["", "ok"])
            self.assertIn("asked.qcow2", self.volume_files())
        finally:
            if "asked.qcow2" in self.volume_files():
                self.interface(volume_path(self.pool_name, "asked.qcow2"), VOLUME).Delete(sv())

    def test_interactive_authorization_reaches_the_callers_agent(self):
        got = self.interactive_attempt("{}", interactive=True)
        self.assertEqual(got, ["org.vmstor.storage1.manage-volumes", NOT_AUTHORIZED])
        self.assertNotIn("asked.qcow2", self.volume_files())

    def test_no_user_interaction_keeps_the_agent_out(self):
        got = self.interactive_attempt("{'auth.no_user_interaction': GLib.Variant('b', True)}", interactive=True)
        self.assertEqual(got, ["", NOT_AUTHORIZED])

    def test_a_call_without_the_interactive_flag_keeps_the_agent_out(self):
        got = self.interactive_attempt("{}", interactive=False)
        self.assertEqual(got, ["", NOT_AUTHORIZED])

    def test_without_polkit_only_root_is_allowed_and_the_log_says_so_once(self):
        self.env.stop_polkitd()
        try:
            self.assertFalse(self.env.bus_has_name("org.freedesktop.PolicyKit1"))
            got = self.attempt(OTHER_ACCOUNT, f"{self.volume_expr('shared.qcow2')}.Info(sv())")
            self.assertEqual(got, [NOT_AUTHORIZED])
            got = self.attempt(LIBVIRT_ACCOUNT, f"{self.volume_expr('shared.qcow2')}.Info(sv())")
            self.assertEqual(got, [NOT_AUTHORIZED])
            self.assertIn("shared.qcow2", self.volume_files())
            path = self.pool(self.pool_name).CreateVolume("while-away.qcow2", dbus.UInt64(MiB), sv())
            self.interface(path, VOLUME).Delete(sv())
            self.assertEqual(self.env.vmstord_log().count(UNREACHABLE), 1, self.env.vmstord_log()[-3000:])
        finally:
            self.env.start_polkitd()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.attempt(
                OTHER_ACCOUNT, f"{self.volume_expr('shared.qcow2')}.Info(sv())") != ["ok"]:
            time.sleep(0.2)
        self.assertEqual(self.attempt(OTHER_ACCOUNT, f"{self.volume_expr('shared.qcow2')}.Info(sv())"), ["ok"],
                         "another uid's Info was still refused 10 s after polkitd came back")


if __name__ == "__main__":
    main()
