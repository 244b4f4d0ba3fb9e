#!/usr/bin/python3
"""vmstord built with AddressSanitizer and UndefinedBehaviorSanitizer (-Db_sanitize=address,undefined) for a
short run through every layer and a clean SIGTERM: no report from either sanitizer, LeakSanitizer included.
Registered only in a sanitized build (scripts/test makes one: build-asan)."""

import glob
import os
import signal

from harness import VMSTORD, IntegrationTest, main
from short_run import exercise_every_layer

SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")


class SanitizerTest(IntegrationTest):
    vmstord_at_start = False  # started below, with the sanitizers' options

    @classmethod
    def setUpEnvironment(cls):
        cls.reports = cls.env.path("sanitizer")
        os.makedirs(cls.reports, exist_ok=True)
        os.chown(cls.reports, cls.env.user.pw_uid, cls.env.user.pw_gid)
        cls.env.start_vmstord(VMSTORD, extra_env={
            "ASAN_OPTIONS": f"detect_leaks=1:log_path={cls.reports}/asan:exitcode=97",
            "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={cls.reports}/ubsan",
            "LSAN_OPTIONS": f"suppressions={SUPPRESSIONS}"})

    def read_reports(self):
        text = ""
        for name in sorted(glob.glob(os.path.join(self.reports, "*"))):
            with open(name, errors="replace") as f:
                text += f"--- {os.path.basename(name)}\n{f.read()}"
        return text

    def test_a_short_run_has_no_sanitizer_report(self):
        exercise_every_layer(self)
        # Stopped here by the test, which judges the exit and the reports itself.
        status = self.env.end_vmstord(signal.SIGTERM, 120)
        reports = self.read_reports()
        print(f"sanitizers: vmstord exited with {status}; {len(reports)} bytes of reports")
        self.assertEqual(reports, "", f"the sanitizers reported:\n{reports[-8000:]}")
        self.assertEqual(status, 0, f"the sanitized vmstord exited with {status}:\n{self.env.vmstord_log()[-3000:]}")


if __name__ == "__main__":
    main()
