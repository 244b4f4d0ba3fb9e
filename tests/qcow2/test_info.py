#!/usr/bin/python3
"""vmstor-img info --output=json equals qemu-img's on every field both report, for every corpus image
(qemu-img's exit code where it refuses one); the fields every image has must be there. The human
output of the good images is the same line for line."""
import unittest

import difftest as dt

# Fields qemu-img reports that vmstor-img must report too (when qemu-img has them for that image).
REQUIRED = [
    "virtual-size", "filename", "format", "actual-size", "dirty-flag", "cluster-size",
    "backing-filename", "backing-filename-format", "full-backing-filename", "snapshots",
    "format-specific.type", "format-specific.data.compat", "format-specific.data.refcount-bits",
    "format-specific.data.lazy-refcounts", "format-specific.data.corrupt",
    "format-specific.data.extended-l2", "format-specific.data.compression-type",
]


def compare_info(case, args, label):
    expected_run = dt.qemu("info", "--output=json", *args)
    actual_run = dt.vmstor("info", "--output=json", *args)
    dt.assert_no_signal(case, actual_run, f"vmstor-img info {label}")
    case.assertEqual(actual_run.returncode, expected_run.returncode,
                     f"vmstor-img info {label}: {dt.describe(actual_run)}; qemu-img: {dt.describe(expected_run)}")
    if expected_run.returncode != 0:
        return
    expected = dt.load_json(case, expected_run, "qemu-img info")
    actual = dt.load_json(case, actual_run, f"vmstor-img info {label}")
    pairs = list(zip(expected, actual)) if isinstance(expected, list) else [(expected, actual)]
    if isinstance(expected, list):
        case.assertIsInstance(actual, list, "--backing-chain must give a list")
        case.assertEqual(len(actual), len(expected), "length of the backing chain")
    problems = []
    for index, (e, a) in enumerate(pairs):
        missing = dt.missing_fields(e, a, REQUIRED)
        problems += [f"  [{index}] {field}: missing (qemu-img: reported)" for field in missing]
        problems += dt.json_diff(e, a, f"[{index}]", shared_only=True)
    if problems:
        case.fail(f"vmstor-img info {label} differs from qemu-img:\n" + "\n".join(problems))


class InfoTest(unittest.TestCase):
    def check_image(self, image):
        compare_info(self, ["-f", image["format"], image["file"]], image["name"])


class InfoBackingChainTest(unittest.TestCase):
    def check_image(self, image):
        compare_info(self, ["--backing-chain", "-f", image["format"], image["file"]], image["name"])


class InfoHumanTest(unittest.TestCase):
    """The human output (the default) is compared line for line."""

    def check_image(self, image):
        args = ["info", "-f", image["format"], image["file"]]
        dt.assert_same_output(self, args, f"vmstor-img info {image['name']}")


def refused_snapshot_table(image):
    """Damaged snapshot tables qemu-img opens (it validates entries only when a snapshot is used): a
    normal open refuses them (Corrupt); only check reads them tolerantly, as qemu-img check does."""
    return (image["kind"] == "damaged" and image["features"]["damage"].startswith("snapshot_")
            and image["qemu"]["info_rc"] == 0)


class RefusedSnapshotTableTest(unittest.TestCase):
    def check_image(self, image):
        result = dt.vmstor("info", "--output=json", "-f", "qcow2", image["file"])
        dt.assert_no_signal(self, result, f"vmstor-img info {image['name']}")
        lines = result.stderr.decode(errors="replace").splitlines()
        self.assertEqual(result.returncode, 1, f"vmstor-img info {image['name']}: {dt.describe(result)}")
        self.assertEqual(len(lines), 1, f"vmstor-img info {image['name']}: one line on stderr, got {lines}")
        self.assertIn(image["file"], lines[0])
        self.assertIn("snapshot", lines[0])


def compared(image):
    """Hostile headers qemu-img opens are compared too, except those vmstor-img must refuse."""
    return ("policy" not in image and image["name"] not in dt.STRICTER_THAN_QEMU
            and not refused_snapshot_table(image))


dt.add_cases(InfoTest, "info", dt.images(where=compared), InfoTest.check_image)
dt.add_cases(RefusedSnapshotTableTest, "refused_snapshot_table", dt.images(where=refused_snapshot_table),
             RefusedSnapshotTableTest.check_image)
dt.add_cases(InfoHumanTest, "info_human", dt.images(kind="good"), InfoHumanTest.check_image)
dt.add_cases(InfoBackingChainTest, "info_backing_chain",
             dt.images(kind="good", where=lambda i: "chain_length" in i["features"]),
             InfoBackingChainTest.check_image)

if __name__ == "__main__":
    dt.main()
