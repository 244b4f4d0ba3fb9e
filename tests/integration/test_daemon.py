#!/usr/bin/python3
"""vmstord as a service: it tells systemd when it is ready, stops cleanly on SIGTERM and gives its bus
name back, and a second instance cannot take the name from the first."""

import os
import signal
import socket
import subprocess
import time

from harness import BUS_NAME, MANAGER, ROOT, VMSTORD, IntegrationTest, main

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class DaemonTests(IntegrationTest):
    def test_sd_notify_ready_then_clean_stop_on_sigterm(self):
        problems = self.vmstord_stop_problems()
        self.assertEqual(problems, [], "the harness's vmstord did not stop cleanly")
        self.assertFalse(self.env.bus_has_name(BUS_NAME))
        notify_path = self.env.path("notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            os.chmod(notify_path, 0o666)  # vmstord runs as the test account
            notify.settimeout(READY_TIMEOUT)
            process = self.env.start_vmstord(VMSTORD, extra_env={"NOTIFY_SOCKET": notify_path}, wait=False)
            deadline = time.monotonic() + READY_TIMEOUT
            messages = []
            while not any("READY=1" in m.split("\n") for m in messages):
                notify.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    messages.append(notify.recv(4096).decode())
                except socket.timeout:
                    self.fail(f"no READY=1 on NOTIFY_SOCKET within {READY_TIMEOUT} s; got {messages}")
        # Ready means served: the name is taken and the Manager answers.
        self.assertTrue(self.env.bus_has_name(BUS_NAME), "READY=1 came before the bus name was taken")
        self.assertTrue(self.properties(ROOT, MANAGER)["Connected"])

        started = time.monotonic()
        # Stopped here by the test, which judges the exit itself.
        status = self.env.end_vmstord(signal.SIGTERM, STOP_TIMEOUT)
        if status is None:
            self.fail(f"vmstord did not stop within {STOP_TIMEOUT} s of SIGTERM")
        print(f"vmstord stopped {time.monotonic() - started:.2f} s after SIGTERM")
        self.assertEqual(status, 0, "vmstord's exit status after SIGTERM")
        self.assertFalse(self.env.bus_has_name(BUS_NAME))
        self.env.start_vmstord(VMSTORD)  # for the other tests

    def test_a_second_instance_does_not_take_the_name(self):
        first = self.env.vmstord_pid
        with open(self.env.path("second.log"), "wb") as log:
            second = self.env._spawn_as_account(
                [VMSTORD, "--connect", self.env.uri],
                self.env.account_env(DBUS_SYSTEM_BUS_ADDRESS=self.env.bus_address), log, log)
        try:
            status = second.wait(READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
            self.fail("a second vmstord kept running while the first owns the name")
        self.assertNotEqual(status, 0)
        with open(self.env.path("second.log"), errors="replace") as log:
            said = log.read()
        self.assertTrue(BUS_NAME in said or "bus name" in said, f"the second instance does not say why: {said}")
        self.assertEqual(self.env.vmstord_pid, first)
        self.assertTrue(self.properties(ROOT, MANAGER)["Connected"])


if __name__ == "__main__":
    main()
