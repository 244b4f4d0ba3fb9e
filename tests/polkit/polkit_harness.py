"""A private environment with a real polkitd on the private system bus, the project's polkit action and
rule files installed for the duration of the tests, and the accounts the authorization tests call as.

polkitd runs as its own account (the bus policy of the polkitd package lets only that account own
org.freedesktop.PolicyKit1). The installed files are removed when the environment is removed, which the
shared harness also does on a timeout or Ctrl-C.
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "jobs"))

from jobs_harness import (OTHER_ACCOUNT, JobsTest, main, pool_path, sv, unix_fd, volume_path,  # noqa: E402,F401
                          write_random_file)
import harness  # noqa: E402 (jobs_harness put tests/integration on sys.path)
from private_env import (PrivateEnv, READY_TIMEOUT, ensure_account, kill_by_pidfile,  # noqa: E402
                         wait_until)

POLKITD = "/usr/lib/polkit-1/polkitd"
POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_BUS_POLICY = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf"
INSTALLED = {
    # project file -> where polkitd reads it
    os.path.join("dbus", "org.vmstor.storage1.policy"): "/usr/share/polkit-1/actions/org.vmstor.storage1.policy",
    os.path.join("dbus", "50-org.vmstor.storage1.rules"): "/etc/polkit-1/rules.d/50-org.vmstor.storage1.rules",
}
LIBVIRT_ACCOUNT = "vmstorlibvirt"  # an unprivileged account in the group libvirt
VOLUMES_ACCOUNT = "vmstorvolumes"  # an unprivileged account that a test rule gives manage-volumes only
# An unprivileged account that a test rule gives manage-volumes on the volumes named mine-* of the pool
# 'guarded' only.
POOL_ACCOUNT = "vmstorpoolonly"
# Installed next to the project's rule for the tests' duration only.
TEST_RULE = ("/etc/polkit-1/rules.d/49-vmstor-tests.rules", f"""
polkit.addRule(function(action, subject) {{
    if (action.id == "org.vmstor.storage1.manage-volumes" && subject.user == "{VOLUMES_ACCOUNT}")
        return polkit.Result.YES;
    if (action.id == "org.vmstor.storage1.manage-volumes" && subject.user == "{POOL_ACCOUNT}" &&
        action.lookup("pool") == "guarded" && (action.lookup("volume") || "").indexOf("mine-") == 0)
        return polkit.Result.YES;
}});
""")


def ensure_libvirt_account():
    if subprocess.run(["getent", "group", "libvirt"], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "--system", "libvirt"], check=True)
    user = ensure_account(LIBVIRT_ACCOUNT)
    groups = subprocess.run(["id", "-nG", LIBVIRT_ACCOUNT], capture_output=True, text=True).stdout.split()
    if "libvirt" not in groups:
        subprocess.run(["usermod", "-a", "-G", "libvirt", LIBVIRT_ACCOUNT], check=True)
    return user


class PolkitEnv(PrivateEnv):
    """PrivateEnv plus polkitd; the project's polkit files are installed while it runs."""

    def _write_bus_config(self, kind):
        config, socket_path = super()._write_bus_config(kind)
        if kind == "system":
            with open(config) as f:
                text = f.read()
            with open(config, "w") as f:
                f.write(text.replace("</busconfig>", f"  <include>{POLKIT_BUS_POLICY}</include>\n</busconfig>"))
        return config, socket_path

    def install_polkit_files(self):
        self.saved = {}
        for source, target in INSTALLED.items():
            if os.path.exists(target):
                with open(target, "rb") as f:
                    self.saved[target] = f.read()
            with open(os.path.join(self.source_root, source)) as f:
                text = f.read()
            if target.endswith(".policy"):
                # polkit takes details (pool, volume) only from root or an action's owner: vmstord runs as
                # an unprivileged account here, so that account is made the owner, as such a set-up needs.
                owner = f'<annotate key="org.freedesktop.policykit.owner">unix-user:{self.account}</annotate>'
                text = text.replace("</defaults>", "</defaults>\n    " + owner)
            with open(target, "w") as f:
                f.write(text)
            os.chmod(target, 0o644)
        with open(TEST_RULE[0], "w") as f:
            f.write(TEST_RULE[1])

    def remove_polkit_files(self):
        if os.path.exists(TEST_RULE[0]):
            os.unlink(TEST_RULE[0])
        for target in INSTALLED.values():
            previous = getattr(self, "saved", {}).get(target)
            if previous is None:
                if os.path.exists(target):
                    os.unlink(target)
            else:
                with open(target, "wb") as f:
                    f.write(previous)

    def start_polkitd(self):
        # Started as root, polkitd changes to its own account, which the bus policy lets own its name.
        with open(self.path("polkitd.log"), "ab") as log:
            process = subprocess.Popen([POLKITD, "--no-debug"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                            "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address})
        with open(self.path("polkitd.pid"), "w") as f:
            f.write(f"{process.pid}\n")
        self.polkitd_process = process
        wait_until(lambda: process.poll() is None and self.bus_has_name(POLKIT_NAME), READY_TIMEOUT,
                   "polkitd to take " + POLKIT_NAME)

    def stop_polkitd(self):
        kill_by_pidfile(self.path("polkitd.pid"), "polkitd")
        process = getattr(self, "polkitd_process", None)
        if process is not None:
            process.wait(READY_TIMEOUT)
            self.polkitd_process = None

    def start(self, vmstord=None):
        self.install_polkit_files()
        try:
            super().start()
            self.start_polkitd()
            if vmstord:
                self.start_vmstord(vmstord)
        except BaseException:
            self.remove()
            raise

    def stop(self):
        self.stop_polkitd()
        super().stop()

    def remove(self):
        super().remove()
        self.remove_polkit_files()


# The shared harness makes a PrivateEnv for every test class: these tests need polkitd on its bus.
harness.PrivateEnv = PolkitEnv


class PolkitTest(JobsTest):
    """A dir pool, polkitd, and clients that call as other accounts."""

    pool_name = "guarded"

    @classmethod
    def setUpEnvironment(cls):
        super().setUpEnvironment()
        ensure_account(OTHER_ACCOUNT)
        ensure_account(VOLUMES_ACCOUNT)
        ensure_account(POOL_ACCOUNT)
        ensure_libvirt_account()

    def call_as(self, user, code, timeout=60):
        """Runs `code` as `user`; it prints what it got. Returns the printed lines."""
        done = self.run_client(code, user=user, timeout=timeout)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout.splitlines()

    def attempt(self, user, *calls):
        """Runs each Python statement as `user`; returns, per statement, 'ok' or the D-Bus error name."""
        code = "".join(f"try:\n    {call}\n    print('ok')\nexcept dbus.exceptions.DBusException as e:\n"
                       f"    print(e.get_dbus_name())\n" for call in calls)
        return self.call_as(user, code)


def iface(path, interface):
    """The client-side expression for a D-Bus interface (used inside attempt's statements)."""
    return f"dbus.Interface(bus.get_object(BUS_NAME, {str(path)!r}, introspect=False), {interface!r})"
