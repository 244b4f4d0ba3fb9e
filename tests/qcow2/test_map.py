#!/usr/bin/python3
"""vmstor-img map --output=json equals qemu-img map --output=json, entry for entry, for every good image."""
import unittest

import difftest as dt


class MapTest(unittest.TestCase):
    def check_image(self, image):
        args = ["map", "--output=json", "-f", image["format"], image["file"]]
        expected_run, actual_run = dt.qemu(*args), dt.vmstor(*args)
        dt.assert_ok(self, expected_run, "qemu-img map")
        dt.assert_ok(self, actual_run, f"vmstor-img map {image['name']}")
        expected = dt.load_json(self, expected_run, "qemu-img map")
        actual = dt.load_json(self, actual_run, "vmstor-img map")
        problems = dt.json_diff(expected, actual)
        if problems:
            self.fail(f"vmstor-img map {image['name']} differs from qemu-img:\n" + "\n".join(problems[:40]))


dt.add_cases(MapTest, "map", dt.images(kind="good"), MapTest.check_image)

if __name__ == "__main__":
    dt.main()
