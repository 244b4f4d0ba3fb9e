"""What every integration test shares: a private libvirtd, bus and vmstord per test file, D-Bus helpers,
virsh and vmstorctl runners, and a recorder for ObjectManager and PropertiesChanged signals.

meson passes VMSTORD, VMSTORCTL (empty when not built) and VMSTOR_SOURCE_ROOT in the environment.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ElementTree

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

SOURCE_ROOT = os.environ.get("VMSTOR_SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
VMSTORD = os.environ.get("VMSTORD", "")
VMSTORCTL = os.environ.get("VMSTORCTL", "")
sys.path.insert(0, os.path.join(SOURCE_ROOT, "scripts"))
from private_env import PrivateEnv, describe_status  # noqa: E402

BUS_NAME = "org.vmstor.Storage1"
ROOT = "/org/vmstor/Storage1"
MANAGER = "org.vmstor.Storage1.Manager"
POOL = "org.vmstor.Storage1.Pool"
VOLUME = "org.vmstor.Storage1.Volume"
ERROR = "org.vmstor.Storage1.Error."
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
EVENT_TIMEOUT = 2.0  # the bound for a change made with virsh to show on D-Bus
MiB = 1024 * 1024

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)


def sv(mapping=None, **values):
    """An a{sv} argument: option and definition dictionaries (a plain dict would be sent as a{ss})."""
    return dbus.Dictionary({**(mapping or {}), **values}, signature="sv")


def encode_segment(name):
    """An object path segment the way sd_bus_path_encode makes it: every byte but an ASCII letter, or a
    digit after the first byte, as _xx."""
    if not name:
        return "_"
    return "".join(chr(b) if chr(b).isascii() and (chr(b).isalpha() or (i > 0 and chr(b).isdigit()))
                   else f"_{b:02x}" for i, b in enumerate(name.encode()))


def pool_path(pool):
    return f"{ROOT}/pool/{encode_segment(pool)}"


def volume_path(pool, volume):
    return f"{pool_path(pool)}/volume/{encode_segment(volume)}"


def unwrap(value):
    """dbus-python's typed values as plain Python values."""
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32, dbus.Int64,
                          dbus.UInt64)):
        return int(value)
    if isinstance(value, dbus.Double):
        return float(value)
    if isinstance(value, (dbus.String, dbus.ObjectPath)):
        return str(value)
    if isinstance(value, dict):
        return {unwrap(k): unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap(v) for v in value]
    return value


def pump(timeout):
    """Lets the GLib loop deliver signals for `timeout` seconds."""
    context = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not context.iteration(False):
            time.sleep(0.01)


class SignalRecorder:
    """Records InterfacesAdded/Removed and PropertiesChanged from vmstord, in arrival order."""

    def __init__(self, bus):
        self.events = []
        self._matches = [
            bus.add_signal_receiver(self._added, "InterfacesAdded", OBJECT_MANAGER, BUS_NAME, ROOT),
            bus.add_signal_receiver(self._removed, "InterfacesRemoved", OBJECT_MANAGER, BUS_NAME, ROOT),
            bus.add_signal_receiver(self._changed, "PropertiesChanged", PROPERTIES, BUS_NAME, None,
                                    path_keyword="path"),
        ]
        pump(0.1)

    def _added(self, path, interfaces):
        self.events.append(("added", str(path), unwrap(interfaces)))

    def _removed(self, path, interfaces):
        self.events.append(("removed", str(path), unwrap(interfaces)))

    def _changed(self, interface, changed, invalidated, path=None):
        self.events.append(("changed", str(path), str(interface), unwrap(changed), unwrap(invalidated)))

    def clear(self):
        pump(0.05)
        self.events.clear()

    def wait_for(self, predicate, timeout):
        """Returns the first recorded event that satisfies predicate, or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            if time.monotonic() >= deadline:
                return None
            pump(0.02)

    def wait_added(self, path, interface, timeout=EVENT_TIMEOUT):
        return self.wait_for(lambda e: e[0] == "added" and e[1] == path and interface in e[2], timeout)

    def wait_removed(self, path, interface, timeout=EVENT_TIMEOUT):
        return self.wait_for(lambda e: e[0] == "removed" and e[1] == path and interface in e[2], timeout)

    def wait_changed(self, path, interface, prop, timeout=EVENT_TIMEOUT):
        return self.wait_for(lambda e: e[0] == "changed" and e[1] == path and e[2] == interface
                             and (prop in e[3] or prop in e[4]), timeout)

    def close(self):
        for match in self._matches:
            match.remove()


_running_envs = []


def _stop_envs_and_exit(signum, frame):
    # meson's timeout or Ctrl-C: nothing may be left running.
    for env in _running_envs:
        env.remove()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _stop_envs_and_exit)
signal.signal(signal.SIGINT, _stop_envs_and_exit)


class IntegrationTest(unittest.TestCase):
    """Starts libvirtd, the bus and vmstord for the test class; stops them afterwards.

    A crashed daemon fails the test that crashed it: after each test vmstord must still run and its log
    must have gained no sanitizer report or "terminate called" line; after the class it must exit 0
    within its stop timeout on SIGTERM. A test that ends vmstord on purpose does so with env.end_vmstord.
    """

    maxDiff = None
    libvirtd_capabilities = ()  # see PrivateEnv
    vmstord_as_root = False
    vmstord_at_start = True  # False: setUpEnvironment starts it (under a wrapper, with other options)

    @classmethod
    def setUpClass(cls):
        if not VMSTORD or not os.access(VMSTORD, os.X_OK):
            raise AssertionError(f"vmstord is not built (VMSTORD={VMSTORD!r}); these tests need it")
        cls.env = PrivateEnv(tempfile.mkdtemp(prefix="vmstor-it."), SOURCE_ROOT,
                             libvirtd_capabilities=cls.libvirtd_capabilities,
                             vmstord_as_root=cls.vmstord_as_root)
        cls.log_checked = 0  # how much of vmstord.log the checks have read
        _running_envs.append(cls.env)
        try:
            cls.env.start(VMSTORD if cls.vmstord_at_start else None)
            cls.bus = dbus.bus.BusConnection(cls.env.bus_address)
            cls.signals = SignalRecorder(cls.bus)
            cls.setUpEnvironment()
        except BaseException:
            cls._print_vmstord_log()
            cls.env.remove()
            _running_envs.remove(cls.env)
            raise

    @classmethod
    def setUpEnvironment(cls):
        """What a test class needs beyond the bare environment (runs inside its clean-up guard)."""

    @classmethod
    def tearDownClass(cls):
        cls.signals.close()
        cls.bus.close()
        problems = cls.vmstord_stop_problems()
        if problems or os.environ.get("VMSTOR_TEST_VERBOSE"):
            cls._print_vmstord_log()
        cls.env.remove()
        _running_envs.remove(cls.env)
        if problems:
            raise AssertionError("vmstord did not end cleanly:\n" + "\n".join(problems))

    @classmethod
    def vmstord_stop_problems(cls):
        """Stops vmstord with SIGTERM; what went wrong: its exit, and what its log gained since the last check."""
        problems = cls.env.stop_vmstord_checked()
        problems += cls.new_log_problems()
        return problems

    @classmethod
    def new_log_problems(cls):
        log_problems, cls.log_checked = cls.env.vmstord_log_problems(since=cls.log_checked)
        if not log_problems:
            return []
        return [f"vmstord's log holds {len(log_problems)} line(s) of a sanitizer report or an uncaught "
                "exception:\n  " + "\n  ".join(log_problems[:20])]

    @classmethod
    def restart_vmstord(cls, **start_options):
        """Stops vmstord (it must exit cleanly, see tearDownClass) and starts it again with start_options."""
        problems = cls.vmstord_stop_problems()
        if problems:
            cls._print_vmstord_log()
            raise AssertionError("vmstord did not end cleanly before its restart:\n" + "\n".join(problems))
        return cls.env.start_vmstord(VMSTORD, **start_options)

    def check_vmstord_survived(self):
        """After each test: vmstord did not exit on its own and its log gained no report of a crash."""
        problems = self.new_log_problems()
        status = self.env.vmstord_exit()
        if status is not None:
            problems.insert(0, f"vmstord exited during this test with {describe_status(status)}")
            self.env.vmstord_process = None  # reported here, not again by the next tests
        if problems:
            self.fail("\n".join(problems))

    @classmethod
    def _print_vmstord_log(cls):
        log = cls.env.vmstord_log()
        if log:
            print(f"----- vmstord log (its last 20000 characters) -----\n{log[-20000:]}", file=sys.stderr)

    def setUp(self):
        self.signals.clear()
        self.addCleanup(self.check_vmstord_survived)

    def run(self, result=None):
        failures_before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures_before:
            self._print_vmstord_log()
        return outcome

    # D-Bus --------------------------------------------------------------------------------------
    @classmethod
    def interface(cls, path, interface):
        return dbus.Interface(cls.bus.get_object(BUS_NAME, path, introspect=False), interface)

    @classmethod
    def manager(cls):
        return cls.interface(ROOT, MANAGER)

    @classmethod
    def pool(cls, name):
        return cls.interface(pool_path(name), POOL)

    @classmethod
    def volume(cls, pool, name):
        return cls.interface(volume_path(pool, name), VOLUME)

    def properties(self, path, interface):
        return unwrap(self.interface(path, PROPERTIES).GetAll(interface))

    def set_property(self, path, interface, name, value):
        self.interface(path, PROPERTIES).Set(interface, name, value, signature="ssv")

    def managed_objects(self):
        return unwrap(self.interface(ROOT, OBJECT_MANAGER).GetManagedObjects())

    @classmethod
    def create_pool(cls, name, **options):
        """A dir pool under the account's pools directory, made with CreatePool; returns its target."""
        target = os.path.join(cls.env.pools_dir, name)
        path = cls.manager().CreatePool(name, "dir", sv({"target.path": target}), sv(options))
        if str(path) != pool_path(name):
            raise AssertionError(f"CreatePool answered {path}, not {pool_path(name)}")
        return target

    def wait_object(self, path, interface, timeout=EVENT_TIMEOUT):
        """Waits until GetManagedObjects lists path with interface (for objects made by a call)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if interface in self.managed_objects().get(path, {}):
                return
            pump(0.05)
        self.fail(f"{path} with {interface} did not appear within {timeout} s")

    def assertDBusError(self, error, call, *args, mentions=()):
        """The call fails with org.vmstor.Storage1.Error.<error>, and its message names `mentions`."""
        with self.assertRaises(dbus.exceptions.DBusException, msg=f"{call} should fail with {error}") as raised:
            call(*args)
        name = raised.exception.get_dbus_name()
        message = raised.exception.get_dbus_message() or ""
        expected = [ERROR + e for e in ([error] if isinstance(error, str) else error)]
        self.assertIn(name, expected, f"wrong error, message: {message}")
        for word in mentions:
            self.assertIn(word.lower(), message.lower(), f"the message of {name} does not name {word!r}")
        return message

    # virsh and other tools ----------------------------------------------------------------------
    def virsh(self, *args, check=True):
        done = subprocess.run(["virsh", "-q", "-c", self.env.uri, *args], capture_output=True, text=True,
                              timeout=60)
        if check and done.returncode != 0:
            self.fail(f"virsh {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def virsh_xml(self, *args):
        return ElementTree.fromstring(self.virsh(*args).stdout)

    def virsh_pools(self):
        return sorted(self.virsh("pool-list", "--all", "--name").stdout.split())

    def virsh_volumes(self, pool):
        lines = self.virsh("vol-list", "--pool", pool).stdout.splitlines()
        return sorted(line.split()[0] for line in lines if line.strip())

    def libvirt_state(self):
        """Every pool with its state, autostart and volumes: what a refused call must leave unchanged."""
        state = {}
        for pool in self.virsh_pools():
            info = self.virsh_pool_info(pool)
            volumes = self.virsh_volumes(pool) if info["State"] == "running" else []
            state[pool] = (info["State"], info["Autostart"], volumes)
        return state

    def virsh_pool_info(self, pool):
        lines = self.virsh("pool-info", "--bytes", pool).stdout.splitlines()
        return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}

    def qemu_img_info(self, path):
        done = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def vmstorctl(self, *args):
        if not VMSTORCTL or not os.access(VMSTORCTL, os.X_OK):
            self.fail(f"vmstorctl is not built (VMSTORCTL={VMSTORCTL!r})")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.bus_address)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        return subprocess.run([VMSTORCTL, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=60)


def main():
    unittest.main(verbosity=2)
