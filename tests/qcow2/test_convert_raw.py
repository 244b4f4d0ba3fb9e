#!/usr/bin/python3
"""vmstor-img convert -O raw writes the same bytes as qemu-img convert -O raw, for every good image
(backing chains read through), and fails where qemu-img fails (undecodable compressed data)."""
import unittest

import difftest as dt


class ConvertToRawTest(dt.ScratchCase):
    def check_image(self, image):
        expected, actual = self.scratch_path("qemu.raw"), self.scratch_path("vmstor.raw")
        expected_run = dt.qemu("convert", "-f", image["format"], "-O", "raw", image["file"], expected)
        actual_run = dt.vmstor("convert", "-f", image["format"], "-O", "raw", image["file"], actual)
        dt.assert_no_signal(self, actual_run, f"vmstor-img convert {image['name']}")
        self.assertEqual(actual_run.returncode, expected_run.returncode,
                         f"vmstor-img convert -O raw {image['name']}: {dt.describe(actual_run)}; "
                         f"qemu-img: {dt.describe(expected_run)}")
        if expected_run.returncode == 0:
            difference = dt.first_difference(expected, actual)
            self.assertIsNone(difference, f"vmstor-img convert -O raw {image['name']}: {difference}")


dt.add_cases(ConvertToRawTest, "convert_raw",
             dt.images(kind="good") + dt.images(kind="damaged", where=lambda i: "compressed" in i["name"]),
             ConvertToRawTest.check_image)

if __name__ == "__main__":
    dt.main()
