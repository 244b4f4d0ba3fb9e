#!/usr/bin/python3
"""vmstor-img check gives qemu-img check's verdict: the same exit code (0 clean, 1 not completed,
2 corruptions, 3 leaks only, 63 no checks) and the same --output=json fields, for every image; the
human report of good and damaged images is the same line for line."""
import unittest

import difftest as dt

REQUIRED = ["check-errors", "image-end-offset", "total-clusters", "allocated-clusters",
            "corruptions", "leaks", "filename", "format"]


class CheckTest(unittest.TestCase):
    def check_image(self, image):
        args = ["check", "--output=json", "-f", image["format"], image["file"]]
        expected_run, actual_run = dt.qemu(*args), dt.vmstor(*args)
        dt.assert_no_signal(self, actual_run, f"vmstor-img check {image['name']}")
        self.assertEqual(actual_run.returncode, expected_run.returncode,
                         f"vmstor-img check {image['name']}: {dt.describe(actual_run)}; "
                         f"qemu-img: {dt.describe(expected_run)}")
        if not expected_run.stdout.strip():
            return  # qemu-img printed no report (image not opened): the exit code is the verdict
        expected = dt.load_json(self, expected_run, "qemu-img check")
        actual = dt.load_json(self, actual_run, f"vmstor-img check {image['name']}")
        problems = [f"  {f}: missing" for f in dt.missing_fields(expected, actual, REQUIRED)]
        problems += dt.json_diff(expected, actual, shared_only=True)
        if problems:
            self.fail(f"vmstor-img check {image['name']} differs from qemu-img:\n" + "\n".join(problems))


class CheckHumanTest(unittest.TestCase):
    """The human report on stdout is compared line for line (problems go to stderr, not compared)."""

    def check_image(self, image):
        args = ["check", "-f", image["format"], image["file"]]
        dt.assert_same_output(self, args, f"vmstor-img check {image['name']}")


dt.add_cases(CheckHumanTest, "check_human", dt.images(where=lambda i: i["kind"] != "hostile"),
             CheckHumanTest.check_image)
dt.add_cases(CheckTest, "check",
             dt.images(where=lambda i: "policy" not in i and i["name"] not in dt.STRICTER_THAN_QEMU),
             CheckTest.check_image)

if __name__ == "__main__":
    dt.main()
