#!/usr/bin/python3
"""Load: 32 concurrent clients make 5,000 mixed calls (list, properties, create, resize, snapshot, delete, bad
input) against one daemon. No valid call fails, every bad call gets its named error, the daemon's memory
returns to within 10 % of where it started, and libvirt's view of the pool equals the daemon's at the end."""

import json
import os
import subprocess
import time

from harness import VOLUME, IntegrationTest, encode_segment, main, pool_path, pump, sv

CLIENTS = 32
CALLS = 5000
SEED = os.environ.get("VMSTOR_LOAD_SEED", "vmstor-load")
WARM_UP_CALLS = 200  # one client first, so that one-time set-up (worker threads, arenas) is in the start
SETTLE_SECONDS = 12  # the daemon trims freed memory every 10 s


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class LoadTest(IntegrationTest):
    pool_name = "load"

    @classmethod
    def setUpEnvironment(cls):
        cls.target = cls.create_pool(cls.pool_name)

    def daemon_volumes(self):
        prefix = pool_path(self.pool_name) + "/volume/"
        return sorted(str(ifaces[VOLUME]["Name"]) for path, ifaces in self.managed_objects().items()
                      if path.startswith(prefix) and VOLUME in ifaces)

    def run_clients(self, calls, seed):
        """One load_client.py per entry of `calls`, all at once; returns their reports."""
        client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_client.py")
        processes = [subprocess.Popen(["/usr/bin/python3", client, self.env.bus_address, self.pool_name, str(i),
                                       str(n), seed], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for i, n in enumerate(calls)]
        reports = []
        for index, process in enumerate(processes):
            out, err = process.communicate(timeout=600)
            self.assertEqual(process.returncode, 0, f"client {index} crashed: {err}")
            reports.append(json.loads(out))
        return reports

    def delete_all(self):
        for name in self.daemon_volumes():
            self.interface(f"{pool_path(self.pool_name)}/volume/{encode_segment(name)}", VOLUME).Delete(sv())
        self.assertEqual(self.daemon_volumes(), [])

    def test_32_clients_and_5000_calls(self):
        pid = self.env.vmstord_pid
        self.assertIsNotNone(pid)
        warm_up = self.run_clients([WARM_UP_CALLS], "warm-up")
        self.assertEqual(warm_up[0]["failures"], [])
        self.delete_all()
        time.sleep(SETTLE_SECONDS)
        start_rss = rss_kib(pid)
        started = time.monotonic()
        reports = self.run_clients([CALLS // CLIENTS + (1 if i < CALLS % CLIENTS else 0) for i in range(CLIENTS)],
                                   SEED)
        elapsed = time.monotonic() - started

        counts, failures, survivors = {}, [], []
        for report in reports:
            for kind, n in report["counts"].items():
                counts[kind] = counts.get(kind, 0) + n
            failures += report["failures"]
            survivors += report["volumes"]
        total = sum(counts.values())
        print(f"load: {CLIENTS} clients, {total} calls in {elapsed:.1f} s ({total / elapsed:.0f} calls/s): "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        self.assertEqual(total, CALLS)
        self.assertEqual(failures, [], f"{len(failures)} calls went wrong; first ones: {failures[:10]}")
        self.assertEqual(self.env.vmstord_pid, pid, "the daemon restarted or died under load")

        # libvirt's view equals the daemon's, and both hold exactly what the clients did not delete.
        self.pool(self.pool_name).Refresh(sv())
        pump(0.5)
        self.assertEqual(self.virsh_volumes(self.pool_name), sorted(survivors))
        self.assertEqual(self.daemon_volumes(), sorted(survivors))

        # Memory goes back to where it was once the clients' volumes are gone.
        self.delete_all()
        deadline = time.monotonic() + 3 * SETTLE_SECONDS
        end_rss = rss_kib(pid)
        while end_rss > start_rss * 1.10 and time.monotonic() < deadline:
            time.sleep(2)
            end_rss = rss_kib(pid)
        print(f"load: vmstord RSS {start_rss} KiB before, {end_rss} KiB after")
        self.assertLessEqual(end_rss, start_rss * 1.10,
                             f"vmstord's memory did not return within 10 % of its start: {start_rss} -> {end_rss} KiB")


if __name__ == "__main__":
    main()
