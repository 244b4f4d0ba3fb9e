#!/usr/bin/python3
"""The private environment shared by scripts/run, the integration tests and the benchmarks.

A private libvirtd in session mode and a private dbus-daemon of type system, both with every file
under one state directory, and vmstord run as an unprivileged account against them. Every process is
stopped through its pid file (never by name), and the pid is checked against the expected program so
that a stale pid file cannot hit an unrelated process.

Used as a module (`PrivateEnv`) or as a command: `private_env.py run|start|stop --state DIR ...`.
"""

import argparse
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ACCOUNT = "vmstortest"
BUS_NAME = "org.vmstor.Storage1"
POLICY_FILE = os.path.join("dbus", "org.vmstor.Storage1.conf")
READY_TIMEOUT = 20.0  # seconds any component gets to become ready
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
# What vmstord's log must never hold: a sanitizer's report, or an exception that reached std::terminate.
BROKEN_DAEMON_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer", "terminate called")


class EnvError(RuntimeError):
    """A component of the private environment did not start or stop."""


def ensure_account(name=ACCOUNT):
    """Creates the unprivileged system account if it is missing; returns its passwd entry."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--create-home", name], check=True)
        return pwd.getpwnam(name)


def account_can_reach(user, path):
    """Whether `user` may pass through every directory down to `path` (e.g. not when it is under /root)."""
    return subprocess.run(["test", "-x", path], user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                          stdin=subprocess.DEVNULL).returncode == 0


def reachable_state_dir(wanted, account=ACCOUNT):
    """`wanted` when the account can reach it, otherwise a fixed directory of its own in the temporary
    directory (scripts/run's ./var/ inside a checkout under /root, say)."""
    wanted = os.path.abspath(wanted)
    if account_can_reach(ensure_account(account), os.path.dirname(wanted)):
        return wanted
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:12]
    fallback = os.path.join(tempfile.gettempdir(), f"vmstor-state-{digest}")
    print(f"note: the account '{account}' cannot reach {wanted}; keeping the state in {fallback} instead",
          file=sys.stderr)
    return fallback


def _process_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return None


def _read_pid(pidfile):
    try:
        with open(pidfile) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; otherwise just look whether it still exists.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if _process_name(pid) is None:
            return True
        time.sleep(0.05)
    return False


def kill_by_pidfile(pidfile, program):
    """Stops the process named in pidfile if it is still `program`; removes the pid file."""
    pid = _read_pid(pidfile)
    if pid is not None and _process_name(pid) == program[:15]:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, STOP_TIMEOUT)
    try:
        os.unlink(pidfile)
    except FileNotFoundError:
        pass


def describe_status(status):
    """A Popen return code in words: 'status 3' or 'signal 6 (SIGABRT)'."""
    if status < 0:
        try:
            return f"signal {-status} ({signal.Signals(-status).name})"
        except ValueError:
            return f"signal {-status}"
    return f"status {status}"


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise EnvError(f"timed out after {timeout:.0f} s waiting for {what}")


def _socket_answers(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


class PrivateEnv:
    """libvirtd + dbus-daemon (+ vmstord) with all state under `state_dir`."""

    def __init__(self, state_dir, source_root, account=ACCOUNT, libvirtd_capabilities=(),
                 vmstord_as_root=False):
        """`libvirtd_capabilities` (names such as "sys_admin") are given to libvirtd as ambient
        capabilities, for what a system libvirtd may do and a session one may not (partition a disk);
        `vmstord_as_root` runs vmstord as root, as in production, instead of as the account."""
        self.state_dir = os.path.abspath(state_dir)
        self.source_root = os.path.abspath(source_root)
        self.account = account
        self.libvirtd_capabilities = tuple(libvirtd_capabilities)
        self.vmstord_as_root = vmstord_as_root
        self.user = None
        self.vmstord_process = None
        self.libvirt_dbus_process = None

    # Paths and addresses -------------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    @property
    def libvirt_socket(self):
        return self.path("run", "libvirt", "libvirt-sock")

    @property
    def uri(self):
        return f"qemu+unix:///session?socket={self.libvirt_socket}"

    @property
    def bus_address(self):
        return f"unix:path={self.path('bus', 'system_bus_socket')}"

    @property
    def session_bus_address(self):
        return f"unix:path={self.path('bus', 'session_bus_socket')}"

    @property
    def pools_dir(self):
        """A directory the account may write, for the targets of test pools."""
        return self.path("pools")

    @property
    def vmstord_state_dir(self):
        """vmstord's --state-dir: its settings and the records of running jobs."""
        return self.path("vmstord-state")

    @property
    def vmstord_pid(self):
        return _read_pid(self.path("vmstord.pid"))

    # Set-up -------------------------------------------------------------------------------------
    def prepare(self):
        self.user = ensure_account(self.account)
        os.makedirs(self.state_dir, exist_ok=True)
        os.chmod(self.state_dir, 0o755)
        for sub in ("run", "config", "cache", "data", "pools", "vmstord-state"):
            os.makedirs(self.path(sub), exist_ok=True)
            os.chown(self.path(sub), self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.path("run"), 0o700)
        os.makedirs(self.path("bus"), exist_ok=True)
        os.chmod(self.path("bus"), 0o755)
        if not account_can_reach(self.user, self.path("run")):
            raise EnvError(f"the account '{self.account}' cannot reach {self.state_dir}: a directory above it "
                           "is closed to others; choose a state directory elsewhere")
        # A previous run that was killed hard may have left its processes: stop them first.
        self.stop()

    def account_env(self, **extra):
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.state_dir,
            "LANG": "C.UTF-8",
            "USER": self.account,
            "LOGNAME": self.account,
            "XDG_RUNTIME_DIR": self.path("run"),
            "XDG_CONFIG_HOME": self.path("config"),
            "XDG_CACHE_HOME": self.path("cache"),
            "XDG_DATA_HOME": self.path("data"),
        }
        env.update(extra)
        return env

    def _spawn_as_account(self, argv, env, stdout, stderr, capabilities=()):
        if capabilities:
            # Started as root by setpriv, which switches to the account and keeps these capabilities.
            caps = ",".join(f"+{name}" for name in capabilities)
            argv = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups",
                    f"--inh-caps={caps}", f"--ambient-caps={caps}", "--", *argv]
            return self._spawn_as_root(argv, env, stdout, stderr)
        return subprocess.Popen(
            argv, env=env, cwd=self.state_dir, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[], start_new_session=False)

    def _spawn_as_root(self, argv, env, stdout, stderr):
        return subprocess.Popen(argv, env=env, cwd=self.state_dir, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=stderr, start_new_session=False)

    # libvirtd -----------------------------------------------------------------------------------
    def start_libvirtd(self):
        with open(self.path("libvirtd.log"), "ab") as log:
            daemon = self._spawn_as_account(["libvirtd", "--daemon"], self.account_env(), log, log,
                                            capabilities=self.libvirtd_capabilities)
        if daemon.wait(READY_TIMEOUT) != 0:
            raise EnvError(f"libvirtd --daemon failed; see {self.path('libvirtd.log')}")
        wait_until(lambda: _socket_answers(self.libvirt_socket), READY_TIMEOUT, "libvirtd's socket")
        wait_until(lambda: subprocess.run(["virsh", "-q", "-c", self.uri, "uri"], capture_output=True)
                   .returncode == 0, READY_TIMEOUT, "libvirtd to answer virsh")

    def stop_libvirtd(self):
        kill_by_pidfile(self.path("run", "libvirt", "libvirtd.pid"), "libvirtd")

    # dbus-daemon --------------------------------------------------------------------------------
    def _write_bus_config(self, kind):
        socket_path = self.path("bus", f"{kind}_bus_socket")
        if kind == "system":
            policy = os.path.join(self.source_root, POLICY_FILE)
            if not os.path.exists(policy):
                raise EnvError(f"the bus policy {POLICY_FILE} is missing from {self.source_root}")
            # The system bus's own defaults, then the project's policy, then what the account needs.
            rules = f"""
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{policy}</include>
  <policy user="{self.account}">
    <allow own="{BUS_NAME}"/>
  </policy>"""
        else:
            rules = """
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>"""
        config = self.path("bus", f"{kind}.conf")
        with open(config, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{kind}</type>
  <listen>unix:path={socket_path}</listen>
  <auth>EXTERNAL</auth>
  <pidfile>{self.path('bus', kind + '.pid')}</pidfile>{rules}
</busconfig>
""")
        return config, socket_path

    def start_bus(self, kind="system"):
        config, socket_path = self._write_bus_config(kind)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        started = subprocess.run(["dbus-daemon", f"--config-file={config}", "--fork", "--print-address=1"],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=READY_TIMEOUT)
        if started.returncode != 0:
            raise EnvError(f"dbus-daemon ({kind}) failed: {started.stderr.strip()}")
        os.chmod(socket_path, 0o666)
        wait_until(lambda: _socket_answers(socket_path), READY_TIMEOUT, f"the private {kind} bus")

    def stop_bus(self, kind="system"):
        kill_by_pidfile(self.path("bus", f"{kind}.pid"), "dbus-daemon")

    def bus_has_name(self, name, address=None):
        asked = subprocess.run(
            ["dbus-send", f"--bus={address or self.bus_address}", "--print-reply=literal",
             "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
             f"string:{name}"], capture_output=True, text=True)
        return asked.returncode == 0 and asked.stdout.split()[-1:] == ["true"]

    # vmstord ------------------------------------------------------------------------------------
    def start_vmstord(self, vmstord, stderr=None, extra_args=(), extra_env=None, wait=True, wrapper=(),
                      capabilities=()):
        """Runs vmstord as the account; stderr None means its log goes to vmstord.log. `wrapper` is a
        command line to run it under (valgrind); such a vmstord is stopped through its process, not by name.
        `capabilities` (names such as "fsetid") are given to it as ambient capabilities, as the unit does."""
        vmstord = os.path.abspath(vmstord)
        if not self.vmstord_as_root and not account_can_reach(self.user, vmstord):
            # A build tree the account cannot enter (under /root, say): run a copy from the state directory.
            os.makedirs(self.path("bin"), exist_ok=True)
            vmstord = shutil.copy2(vmstord, self.path("bin", "vmstord"))
            os.chmod(vmstord, 0o755)
        # Its own state directory (settings, job records), never the host's, kept across restarts.
        state = [] if "--state-dir" in extra_args else ["--state-dir", self.vmstord_state_dir]
        argv = [*wrapper, vmstord, "--connect", self.uri, "--verbose", *state, *extra_args]
        env = self.account_env(DBUS_SYSTEM_BUS_ADDRESS=self.bus_address, **(extra_env or {}))
        def spawn(argv, env, stdout, stderr):
            if self.vmstord_as_root:
                return self._spawn_as_root(argv, env, stdout, stderr)
            return self._spawn_as_account(argv, env, stdout, stderr, capabilities=capabilities)
        if stderr is None:
            with open(self.path("vmstord.log"), "ab") as log:
                self.vmstord_process = spawn(argv, env, log, log)
        else:
            self.vmstord_process = spawn(argv, env, stderr, stderr)
        with open(self.path("vmstord.pid"), "w") as f:
            f.write(f"{self.vmstord_process.pid}\n")
        if wait:
            self.wait_vmstord_ready()
        return self.vmstord_process

    def wait_vmstord_ready(self):
        def ready():
            if self.vmstord_process.poll() is not None:
                raise EnvError(f"vmstord exited with status {self.vmstord_process.returncode} before "
                               f"taking {BUS_NAME}; see {self.path('vmstord.log')}")
            return self.bus_has_name(BUS_NAME)
        wait_until(ready, READY_TIMEOUT, f"vmstord to take {BUS_NAME}")

    def stop_vmstord_checked(self):
        """Stops the vmstord this environment started with SIGTERM, as systemd does, and returns what went
        wrong: it had exited already, it did not exit within STOP_TIMEOUT, or its status was not 0.
        [] for a clean stop, and when none runs (never started, or ended by the test with end_vmstord)."""
        process = self.vmstord_process
        if process is None:
            return []
        problems = []
        if process.poll() is not None:
            problems.append(f"vmstord had exited with {describe_status(process.returncode)} before it was stopped")
        else:
            process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(STOP_TIMEOUT)
                if status != 0:
                    problems.append(f"vmstord exited with {describe_status(status)} on SIGTERM, not 0")
            except subprocess.TimeoutExpired:
                problems.append(f"vmstord did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM (killed)")
                process.kill()
                process.wait()
        self.vmstord_process = None
        self.stop_vmstord()  # only removes the pid file now
        return problems

    def end_vmstord(self, signum, timeout=STOP_TIMEOUT):
        """Ends vmstord with `signum` as a step of a test that judges the outcome itself (a kill to test
        a crash, a SIGTERM whose status it checks): the teardown's check is not applied to this process.
        Returns its exit status, or None when it did not exit within `timeout` (it is killed then)."""
        process = self.vmstord_process
        self.vmstord_process = None
        process.send_signal(signum)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
        finally:
            self.stop_vmstord()  # only removes the pid file now

    def vmstord_exit(self):
        """None while the vmstord this environment started runs (or none does); its status once it exited."""
        return None if self.vmstord_process is None else self.vmstord_process.poll()

    def vmstord_log_problems(self, since=0):
        """The lines of vmstord.log, from character `since` on, that say it broke (BROKEN_DAEMON_MARKS), and
        the length of the log they were read from (where the next look starts)."""
        log = self.vmstord_log()
        return [line for line in log[since:].splitlines() if any(mark in line for mark in BROKEN_DAEMON_MARKS)], len(log)

    def stop_vmstord(self):
        kill_by_pidfile(self.path("vmstord.pid"), "vmstord")
        if self.vmstord_process is not None and self.vmstord_process.poll() is None:
            self.vmstord_process.send_signal(signal.SIGTERM)  # one started under a wrapper
        if self.vmstord_process is not None:
            try:
                self.vmstord_process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            self.vmstord_process = None

    def vmstord_log(self):
        try:
            with open(self.path("vmstord.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # libvirt-dbus, the comparison peer of the benchmark -----------------------------------------
    def start_libvirt_dbus(self):
        self.start_bus("session")
        env = self.account_env(DBUS_SESSION_BUS_ADDRESS=self.session_bus_address)
        with open(self.path("libvirt-dbus.log"), "ab") as log:
            self.libvirt_dbus_process = self._spawn_as_account(["libvirt-dbus", "--session"], env, log, log)
        with open(self.path("libvirt-dbus.pid"), "w") as f:
            f.write(f"{self.libvirt_dbus_process.pid}\n")
        wait_until(lambda: self.bus_has_name("org.libvirt", self.session_bus_address), READY_TIMEOUT,
                   "libvirt-dbus to take org.libvirt")

    def stop_libvirt_dbus(self):
        kill_by_pidfile(self.path("libvirt-dbus.pid"), "libvirt-dbus")
        self.stop_bus("session")

    # The whole ----------------------------------------------------------------------------------
    def start(self, vmstord=None):
        """Starts libvirtd and the bus, then vmstord when given; stops what started on failure."""
        self.prepare()
        try:
            self.start_libvirtd()
            self.start_bus()
            if vmstord:
                self.start_vmstord(vmstord)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stops everything this state directory's pid files name, newest first."""
        self.stop_vmstord()
        self.stop_libvirt_dbus()
        self.stop_bus()
        self.stop_libvirtd()

    def remove(self):
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _print_lines(env, vmstorctl):
    bus = env.bus_address
    print(f"""
vmstord runs on a private bus against a private libvirtd (state in {env.state_dir}).
Reach it from another terminal with:

  DBUS_SYSTEM_BUS_ADDRESS={bus} {vmstorctl} pool-list
  busctl --address={bus} tree {BUS_NAME}
  virsh -c '{env.uri}' pool-list --all

Pool targets must be writable by the account '{env.account}', e.g. under {env.pools_dir}/.
Ctrl-C stops vmstord, the bus and libvirtd.
""", flush=True)


def run_foreground(env, vmstord, vmstorctl):
    """scripts/run's private mode: start all, print how to reach vmstord, wait; stop all on a signal."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    status = 0
    try:
        env.start()
        env.start_vmstord(vmstord, stderr=sys.stderr)
        _print_lines(env, vmstorctl)
        status = env.vmstord_process.wait()
        print(f"vmstord exited with status {status}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping vmstord, the private bus and libvirtd", file=sys.stderr)
    except EnvError as e:
        print(f"private environment: {e}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        env.stop()
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "start", "stop"])
    parser.add_argument("--state", required=True, help="state directory")
    parser.add_argument("--source-root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--vmstord", help="the vmstord executable")
    parser.add_argument("--vmstorctl", default="vmstorctl", help="how to call vmstorctl in the printed lines")
    args = parser.parse_args()
    env = PrivateEnv(reachable_state_dir(args.state), args.source_root)
    if args.command == "run":
        if not args.vmstord:
            parser.error("run needs --vmstord")
        return run_foreground(env, args.vmstord, args.vmstorctl)
    if args.command == "start":
        try:
            env.start(args.vmstord)
        except EnvError as e:
            print(f"private environment: {e}", file=sys.stderr)
            return 1
        print(f"DBUS_SYSTEM_BUS_ADDRESS={env.bus_address}\nLIBVIRT_URI={env.uri}")
        return 0
    env.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
