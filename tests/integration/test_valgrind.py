#!/usr/bin/python3
"""vmstord under valgrind's memcheck for a short run that goes through every layer: pools, volumes, a job,
snapshots, bad input and a clean SIGTERM. Valgrind must report no error and no definitely lost block."""

import os
import re
import shutil
import signal
import time

from harness import VMSTORD, IntegrationTest, main
from short_run import exercise_every_layer

START_TIMEOUT = 180.0  # memcheck runs vmstord 20-50 times slower


class ValgrindTest(IntegrationTest):
    vmstord_at_start = False  # started below, under valgrind

    @classmethod
    def setUpEnvironment(cls):
        if not shutil.which("valgrind"):
            raise AssertionError("valgrind is not installed (scripts/setup installs it)")
        cls.report = cls.env.path("valgrind.log")
        wrapper = ["valgrind", "--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite",
                   "--show-leak-kinds=definite", "--error-exitcode=99", "--track-fds=no",
                   f"--log-file={cls.report}"]
        open(cls.report, "w").close()
        os.chown(cls.report, cls.env.user.pw_uid, cls.env.user.pw_gid)
        cls.env.start_vmstord(VMSTORD, wrapper=wrapper, wait=False)
        deadline = time.monotonic() + START_TIMEOUT
        while not cls.env.bus_has_name("org.vmstor.Storage1"):
            if cls.env.vmstord_process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"vmstord under valgrind did not start:\n{cls.read_report()}")
            time.sleep(0.5)

    @classmethod
    def read_report(cls):
        with open(cls.report, errors="replace") as f:
            return f.read()

    def test_a_short_run_has_no_memory_error_and_no_leak(self):
        exercise_every_layer(self)
        # Stopped here by the test, which judges the exit and valgrind's report itself.
        status = self.env.end_vmstord(signal.SIGTERM, 120)
        report = self.read_report()
        summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
        self.assertIsNotNone(summary, f"no valgrind summary:\n{report[-3000:]}")
        print(f"valgrind: {summary.group(0)}; "
              + "; ".join(re.findall(r"(definitely lost: [\d,]+ bytes in [\d,]+ blocks)", report)))
        self.assertEqual(summary.group(1), "0", f"valgrind found errors:\n{report[-6000:]}")
        self.assertEqual(status, 0, f"vmstord under valgrind exited with {status}:\n{report[-3000:]}")


if __name__ == "__main__":
    main()
