#!/usr/bin/python3
"""vmstor-img measure --output=json gives qemu-img measure's numbers: for every good corpus image
converted to qcow2 (and with create options), and for a bare --size with every option."""
import unittest

import difftest as dt

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024

SIZE_CASES = [
    (4 * MiB, {}), (1000448, {}), (1024 * GiB, {}), (16 * GiB, {"cluster_size": 512}),
    (16 * GiB, {"cluster_size": 2 * MiB}), (64 * GiB, {"refcount_bits": 1}), (64 * GiB, {"refcount_bits": 64}),
    (8 * GiB, {"extended_l2": "on"}), (8 * GiB, {"preallocation": "metadata"}), (8 * GiB, {"preallocation": "full"}),
    (8 * GiB, {"compat": "0.10"}),
]
IMAGE_OPTIONS = [{}, {"cluster_size": 4 * KiB}, {"extended_l2": "on", "cluster_size": 2 * MiB}]


def options(values):
    return ["-o", ",".join(f"{k}={v}" for k, v in values.items())] if values else []


class MeasureTest(unittest.TestCase):
    def compare(self, args, label):
        expected, actual = dt.qemu("measure", "--output=json", *args), dt.vmstor("measure", "--output=json", *args)
        dt.assert_no_signal(self, actual, label)
        self.assertEqual(actual.returncode, expected.returncode,
                         f"{label}: {dt.describe(actual)}; qemu-img: {dt.describe(expected)}")
        if expected.returncode == 0:
            problems = dt.json_diff(dt.load_json(self, expected, "qemu-img measure"),
                                    dt.load_json(self, actual, label))
            if problems:
                self.fail(f"{label} differs from qemu-img:\n" + "\n".join(problems))

    def check_image(self, case):
        image, values = case["image"], case["options"]
        self.compare(["-O", "qcow2", *options(values), "-f", image["format"], image["file"]],
                     f"vmstor-img measure {image['name']} {options(values)}")

    def check_size(self, case):
        size, values = case["size"], case["options"]
        self.compare(["-O", "qcow2", *options(values), "--size", str(size)],
                     f"vmstor-img measure --size {size} {options(values)}")


dt.add_cases(MeasureTest, "measure_image",
             [{"name": f"{i['name']}-{'-'.join(f'{k}={v}' for k, v in o.items())}", "image": i, "options": o}
              for o in IMAGE_OPTIONS for i in dt.images(kind="good")],
             MeasureTest.check_image)
dt.add_cases(MeasureTest, "measure_size",
             [{"name": f"{s}-{'-'.join(f'{k}={v}' for k, v in o.items())}", "size": s, "options": o}
              for s, o in SIZE_CASES],
             MeasureTest.check_size)

if __name__ == "__main__":
    dt.main()
