#!/usr/bin/python3
"""vmstor-img check -r leaks and -r all repair damaged images as qemu-img does: the same exit code,
the same counts in --output=json, and afterwards qemu-img check gives the verdict it gave after its
own repair (clean when qemu-img could clean it)."""
import shutil
import unittest

import difftest as dt

# The counts a repair reports; compared when both tools print them.
REQUIRED = ["corruptions-fixed", "leaks-fixed", "corruptions", "leaks", "check-errors"]
# Rebuilt refcount structures go where qemu-img puts them, so the image end offset is compared too.
LAYOUT = {"filename", "fragmented-clusters"}
# 65537 snapshots: qemu-img -r all drops the overhanging one, then refuses to write the rewritten table
# (its overlap check still sees the old table's range) and exits 1; vmstor-img completes the repair.
# For these a complete repair (exit 0, then a clean qemu-img check) is required instead.
COMPLETED_WHERE_QEMU_FAILS = {("damaged-snapshot-count-over-limit.qcow2", "all")}
# A refcount block recorded past the end of the file: qemu-img -r all grows the file (here to over
# 1 TiB, sparse) to reach it and counts it as one more fixed corruption; vmstor-img rebuilds the refcount
# structure without growing the file, so it reports exactly one fewer and its image ends where its data
# does (None: not compared). Nothing else may differ, and qemu-img check must find the result as clean as
# after its own repair.
INTENDED_DIFFERENCES = {
    ("damaged-refcount-block-past-eof.qcow2", "all"): {"corruptions-fixed": -1, "image-end-offset": None}}


class RepairTest(dt.ScratchCase):
    def repair(self, image, mode):
        expected = image["qemu"]["repair"][mode]
        copy = self.copy_image(image)
        result = dt.vmstor("check", "-f", "qcow2", "-r", mode, "--output=json", copy)
        what = f"vmstor-img check -r {mode} {image['name']}"
        dt.assert_no_signal(self, result, what)
        if (image["name"], mode) in COMPLETED_WHERE_QEMU_FAILS:
            self.assertEqual(expected["rc"], 1, f"qemu-img check -r {mode} {image['name']} no longer fails")
            self.assertEqual(result.returncode, 0, f"{what}: {dt.describe(result)}")
            after = dt.qemu("check", "-f", "qcow2", copy)
            self.assertEqual(after.returncode, 0, f"qemu-img check after {what}: {dt.describe(after)}")
            return
        self.assertEqual(result.returncode, expected["rc"],
                         f"{what}: {dt.describe(result)}; qemu-img exited {expected['rc']}")
        if expected["result"] is not None:  # qemu-img printed its counts: vmstor-img must print them too
            expected_result = dict(expected["result"])
            for field, delta in INTENDED_DIFFERENCES.get((image["name"], mode), {}).items():
                if delta is None:
                    del expected_result[field]
                else:
                    expected_result[field] += delta
            actual = dt.load_json(self, result, what)
            problems = [f"  {f}: missing" for f in dt.missing_fields(expected_result, actual, REQUIRED)]
            problems += dt.json_diff({k: v for k, v in expected_result.items() if k not in LAYOUT},
                                     actual, shared_only=True)
            if problems:
                self.fail(f"{what} reports differently from qemu-img:\n" + "\n".join(problems))
        after = dt.qemu("check", "-f", "qcow2", copy)
        self.assertEqual(after.returncode, expected["after_rc"],
                         f"qemu-img check after {what}: {dt.describe(after)} "
                         f"(after qemu-img's own repair it exited {expected['after_rc']})\n"
                         + after.stdout.decode(errors="replace")[:1500])
        self.same_guest_data(image, mode, copy, what)

    def same_guest_data(self, image, mode, copy, what):
        """The guest data that survives the repair is what survives qemu-img's own repair."""
        if image.get("guest_data_lost") or image["qemu"]["repair"][mode]["after_rc"] == 1:
            return  # nothing readable to compare: qemu-img itself cannot read its repaired copy
        reference = self.scratch_path("qemu-repaired.qcow2")
        shutil.copyfile(dt.image_path(image), reference)
        dt.qemu("check", "-f", "qcow2", "-r", mode, reference)
        compared = dt.qemu("compare", "-f", "qcow2", "-F", "qcow2", reference, copy)
        self.assertEqual(compared.returncode, 0,
                         f"qemu-img compare of qemu-img's repaired copy with {what}'s: {dt.describe(compared)}")

    def repair_leaks(self, image):
        self.repair(image, "leaks")

    def repair_all(self, image):
        self.repair(image, "all")


damaged = dt.images(kind="damaged")
dt.add_cases(RepairTest, "repair_leaks", damaged, RepairTest.repair_leaks)
dt.add_cases(RepairTest, "repair_all", damaged, RepairTest.repair_all)

if __name__ == "__main__":
    dt.main()
