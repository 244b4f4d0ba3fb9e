#!/usr/bin/python3
"""vmstor-img convert -c writes compressed images (zlib and zstd) that pass qemu-img check, that
qemu-img compare calls identical to the source, with as many compressed clusters as qemu-img -c makes
of the same source (for zlib, less only the clusters deflate shrinks by under a sector, which vmstor-img
may leave uncompressed), and that record the compression type asked for."""
import os
import unittest
import zlib

import difftest as dt

SOURCES = ["mixed-source.raw", "compat1.1-cl65536.qcow2", "chain3-top.qcow2", "snapshots-1.1.qcow2",
           "compressed-zstd-rewritten.qcow2", "extl2-cl65536.qcow2", "cl16384-odd.qcow2"]
VARIANTS = [("zlib", {}), ("zstd", {}), ("zlib", {"cluster_size": 4096}), ("zstd", {"cluster_size": 2097152}),
            ("zlib", {"compat": "0.10"})]
# Clusters that compress to just under their size (QEMU keeps up to cluster - 1 bytes compressed), and
# 512-byte clusters, where that margin is all there is.
EDGE = "compress-edge.raw"
EDGE_VARIANTS = [("zlib", {}), ("zstd", {}), ("zlib", {"cluster_size": 512}), ("zstd", {"cluster_size": 512})]


def check_report(case, path):
    result = dt.qemu("check", "--output=json", "-f", "qcow2", path)
    case.assertEqual(result.returncode, 0, f"qemu-img check: {dt.describe(result)}\n{result.stdout[:2000]!r}")
    return dt.load_json(case, result, "qemu-img check")


class CompressTest(dt.ScratchCase):
    def check_case(self, case):
        image, ctype, values = case["image"], case["type"], case["options"]
        options = dict(values)
        if values.get("compat") != "0.10":
            options["compression_type"] = ctype
        opt = ",".join(f"{k}={v}" for k, v in options.items())
        mine, theirs = self.scratch_path("vmstor.qcow2"), self.scratch_path("qemu.qcow2")
        label = f"vmstor-img convert -c -O qcow2 -o {opt} {image['name']}"
        dt.assert_ok(self, dt.qemu("convert", "-c", "-f", image["format"], "-O", "qcow2", "-o", opt,
                                   image["file"], theirs), "qemu-img convert -c")
        dt.assert_ok(self, dt.vmstor("convert", "-c", "-f", image["format"], "-O", "qcow2", "-o", opt,
                                     image["file"], mine), label)
        report = check_report(self, mine)
        compare = dt.qemu("compare", "-f", image["format"], "-F", "qcow2", image["file"], mine)
        self.assertEqual(compare.returncode, 0, f"qemu-img compare after {label}: {dt.describe(compare)} "
                         + compare.stdout.decode(errors="replace"))
        info = dt.load_json(self, dt.qemu("info", "--output=json", "-f", "qcow2", mine), "qemu-img info")
        self.assertEqual(info["format-specific"]["data"].get("compression-type", "zlib"), ctype,
                         f"{label}: compression type in the header")
        reference = check_report(self, theirs)
        # Compressed clusters are packed as QEMU packs them (on across a cluster boundary when the next
        # cluster is free): the file is no larger than qemu-img's but for a cluster of metadata placement.
        slack = info["cluster-size"]
        self.assertLessEqual(os.path.getsize(mine), os.path.getsize(theirs) + slack,
                             f"{label}: file size against qemu-img -c's")
        # Same compressor settings as QEMU: the same clusters are worth compressing. For zlib, vmstor-img
        # writes a cluster it proves deflate cannot shrink by a sector uncompressed without deflating it
        # (lib/qcow2/deflate_bound.hpp); only such clusters may be missing.
        mine_count, their_count = report.get("compressed-clusters", 0), reference.get("compressed-clusters", 0)
        if ctype == "zlib" and mine_count < their_count:
            within_a_sector = self.clusters_saving_under_a_sector(image, info["cluster-size"])
            self.assertLessEqual(their_count - mine_count, within_a_sector,
                                 f"{label}: {their_count - mine_count} clusters left uncompressed, but only "
                                 f"{within_a_sector} deflate to within a sector of their size")
        else:
            self.assertEqual(mine_count, their_count, f"{label}: compressed clusters, vmstor-img against qemu-img -c")

    def clusters_saving_under_a_sector(self, image, cluster):
        """The clusters of the guest data that QEMU's deflate (level 6, 4 KiB window, memLevel 9: Python's
        zlib is the same library) shrinks to fit in cluster - 1 bytes but not by a sector (an eighth of
        clusters under 4 KiB), the margin of deflate_proof_limit()."""
        raw = self.scratch_path("guest.raw")
        dt.assert_ok(self, dt.qemu("convert", "-f", image["format"], "-O", "raw", image["file"], raw),
                     "qemu-img convert -O raw")
        limit = cluster - min(512, cluster // 8)
        count = 0
        with open(raw, "rb") as f:
            while data := f.read(cluster):
                data = data.ljust(cluster, b"\0")
                if data.count(0) == cluster:
                    continue
                deflate = zlib.compressobj(6, zlib.DEFLATED, -12, 9)
                size = len(deflate.compress(data) + deflate.flush())
                count += limit <= size <= cluster - 1
        return count


sources = {i["name"]: i for i in dt.images(kind="good")}
dt.add_cases(CompressTest, "compress",
             [{"name": f"{s}-{t}-{'-'.join(f'{k}={v}' for k, v in o.items())}", "image": sources[s], "type": t,
               "options": o} for t, o in VARIANTS for s in SOURCES]
             + [{"name": f"{EDGE}-{t}-{'-'.join(f'{k}={v}' for k, v in o.items())}", "image": sources[EDGE],
                 "type": t, "options": o} for t, o in EDGE_VARIANTS],
             CompressTest.check_case)

if __name__ == "__main__":
    dt.main()
