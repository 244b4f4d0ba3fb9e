#!/usr/bin/python3
"""Layered and engine-made volumes: CreateVolume's qcow2 options as qemu-img sees them, CreateOverlay chains
read through by qemu-io, Busy for backing files and for images QEMU holds open, Check and repair of a
leaking image against qemu-img check, Measure against qemu-img measure."""

import json
import os
import stat
import struct
import time

import dbus

from jobs_harness import JOB, MiB, VOLUME, JobsTest, main, sv, unix_fd, unwrap, volume_path

LOCK_TIMEOUT = 6.0  # Locked follows within ~3 s; twice that on a loaded machine


class LayerTests(JobsTest):
    pool_name = "layers"

    def create(self, name, capacity=32 * MiB, **options):
        """CreateVolume; a preallocated create answers with a job, which must have completed."""
        answer = str(self.pool(self.pool_name).CreateVolume(name, dbus.UInt64(capacity), sv(options)))
        if "/job/" in answer:
            self.assertTrue(options.get("wait"), f"CreateVolume answered a job without wait: {options}")
            self.assertEqual(self.job(answer)["State"], "completed", "wait returned before the job ended")
        else:
            self.assertEqual(answer, volume_path(self.pool_name, name))
        self.wait_object(volume_path(self.pool_name, name), VOLUME)
        return dbus.ObjectPath(volume_path(self.pool_name, name))

    def qcow2_data(self, name):
        info = self.qemu_img_info(self.pool_file(name))
        self.assertEqual(info["format"], "qcow2")
        return info, info["format-specific"]["data"]

    def map_shape(self, path):
        """qemu-img map's extents without host offsets: what two images with the same layout share."""
        done = self.qemu_img("map", "-U", "--output=json", "-f", "qcow2", path)
        return [(e["start"], e["length"], e["data"], e["zero"]) for e in json.loads(done.stdout)]

    def reference_image(self, name, capacity, options):
        path = os.path.join(self.scratch, name)
        self.qemu_img("create", "-q", "-f", "qcow2", "-o", options, path, str(capacity))
        return path

    def volume_obj(self, path):
        return self.interface(str(path), VOLUME)

    # CreateVolume's options ---------------------------------------------------------------------------
    def test_qcow2_options_as_qemu_img_sees_them(self):
        cases = [
            ("c128k.qcow2", dict(cluster_size=dbus.UInt64(128 * 1024)), {"cluster-size": 131072}, {}),
            ("compat010.qcow2", dict(compat="0.10"), {}, {"compat": "0.10"}),
            ("compat11.qcow2", dict(), {"cluster-size": 65536}, {"compat": "1.1", "lazy-refcounts": False}),
            ("lazy.qcow2", dict(lazy_refcounts=True), {}, {"compat": "1.1", "lazy-refcounts": True}),
            ("l2.qcow2", dict(extended_l2=True, cluster_size=dbus.UInt64(128 * 1024)), {"cluster-size": 131072},
             {"extended-l2": True}),
            ("zstd.qcow2", dict(compression_type="zstd"), {}, {"compression-type": "zstd"}),
            ("zlib.qcow2", dict(compression_type="zlib"), {}, {"compression-type": "zlib"}),
        ]
        for name, options, top, specific in cases:
            with self.subTest(name):
                self.create(name, 48 * MiB, format="qcow2", **options)
                info, data = self.qcow2_data(name)
                self.assertEqual(info["virtual-size"], 48 * MiB)
                for key, value in top.items():
                    self.assertEqual(info.get(key), value, f"{name}: {key}")
                for key, value in specific.items():
                    self.assertEqual(data.get(key), value, f"{name}: format-specific {key}")
                self.assert_check_clean(self.pool_file(name))

    def test_backing_by_volume_path_and_by_file_path(self):
        base = self.create("bk-base.raw", 16 * MiB, format="raw")
        self.create("bk-by-object.qcow2", 16 * MiB, format="qcow2", backing=base, backing_format="raw")
        self.create("bk-by-file.qcow2", 16 * MiB, format="qcow2", backing=self.pool_file("bk-base.raw"),
                    backing_format="raw")
        for name in ("bk-by-object.qcow2", "bk-by-file.qcow2"):
            with self.subTest(name):
                info, _ = self.qcow2_data(name)
                self.assertEqual(os.path.realpath(os.path.join(self.target, info["backing-filename"])),
                                 os.path.realpath(self.pool_file("bk-base.raw")))
                self.assertEqual(info.get("backing-filename-format"), "raw")
                self.assert_check_clean(self.pool_file(name))
        self.assertDBusError("InvalidArgument", self.pool(self.pool_name).CreateVolume, "bk-no-format.qcow2",
                             dbus.UInt64(16 * MiB), sv(format="qcow2", backing=base))
        self.assertNotIn("bk-no-format.qcow2", self.volume_files())

    def test_preallocation_like_qemu_img(self):
        capacity = 64 * MiB
        for mode in ("metadata", "falloc", "full"):
            with self.subTest(mode):
                name = f"pre-{mode}.qcow2"
                self.create(name, capacity, format="qcow2", preallocation=mode, wait=True)
                made = self.pool_file(name)
                self.assert_check_clean(made)
                reference = self.reference_image(f"ref-{mode}.qcow2", capacity, f"preallocation={mode}")
                self.assertEqual(self.map_shape(made), self.map_shape(reference),
                                 f"qemu-img map differs from qemu-img create -o preallocation={mode}")
                if mode == "metadata":
                    self.assertLess(os.stat(made).st_blocks * 512, capacity // 4, "metadata wrote data clusters")
                else:
                    self.assertGreaterEqual(os.stat(made).st_blocks * 512, capacity,
                                            f"{mode} did not allocate the data clusters")
                os.unlink(reference)

    def test_preallocation_without_wait_answers_a_job(self):
        answer = str(self.pool(self.pool_name).CreateVolume("pre-job.qcow2", dbus.UInt64(32 * MiB),
                                                             sv(format="qcow2", preallocation="falloc")))
        self.assertIn("/job/", answer)
        props = self.assert_completed(answer)
        self.assertFalse(props["Cancelable"], "volume-create jobs are not cancelable")
        self.wait_object(volume_path(self.pool_name, "pre-job.qcow2"), VOLUME)
        self.assert_check_clean(self.pool_file("pre-job.qcow2"))

    def test_a_finished_job_stays_60_seconds_then_disappears(self):
        job = str(self.pool(self.pool_name).CreateVolume("kept-job.qcow2", dbus.UInt64(8 * MiB),
                                                          sv(format="qcow2", preallocation="metadata", wait=True)))
        ended = time.monotonic()
        self.assertEqual(self.job(job)["State"], "completed")
        while job in self.list_jobs() and time.monotonic() - ended < 75:
            time.sleep(1)
        gone_after = time.monotonic() - ended
        self.assertNotIn(job, self.list_jobs(), "the finished job was still listed 75 s after it ended")
        self.assertGreater(gone_after, 55, f"the finished job disappeared after {gone_after:.0f} s, not 60")
        self.assertNotIn(job, self.managed_objects())

    def test_mode_is_applied(self):
        self.create("mode.qcow2", 8 * MiB, format="qcow2", mode=dbus.UInt32(0o640))
        self.assertEqual(stat.S_IMODE(os.stat(self.pool_file("mode.qcow2")).st_mode), 0o640)
        self.assert_check_clean(self.pool_file("mode.qcow2"))

    # Overlays ----------------------------------------------------------------------------------------
    def test_overlay_chain_shows_the_base_data_and_protects_backing_files(self):
        base = self.create("chain-base.qcow2", 32 * MiB, format="qcow2")
        self.qemu_io("qcow2", self.pool_file("chain-base.qcow2"), "write -P 0xab 1M 2M")
        overlay = self.volume_obj(base).CreateOverlay("chain-ov1.qcow2", sv())
        self.assertEqual(str(overlay), volume_path(self.pool_name, "chain-ov1.qcow2"))
        overlay2 = self.volume_obj(overlay).CreateOverlay("chain-ov2.qcow2", sv(cluster_size=dbus.UInt64(128 * 1024),
                                                                                   lazy_refcounts=True))
        self.qemu_io("qcow2", self.pool_file("chain-ov1.qcow2"), "write -P 0xcd 8M 1M")
        top = self.pool_file("chain-ov2.qcow2")
        self.qemu_io("qcow2", top, "read -P 0xab 1M 2M")
        self.qemu_io("qcow2", top, "read -P 0xcd 8M 1M")
        self.qemu_io("qcow2", top, "read -P 0 16M 1M")
        info, data = self.qcow2_data("chain-ov2.qcow2")
        self.assertEqual(info["cluster-size"], 128 * 1024)
        self.assertTrue(data["lazy-refcounts"])
        self.assertEqual(info["virtual-size"], 32 * MiB)
        for name in ("chain-base.qcow2", "chain-ov1.qcow2", "chain-ov2.qcow2"):
            self.assert_check_clean(self.pool_file(name))

        self.assertDBusError("Busy", self.volume_obj(base).Delete, sv(), mentions=["chain-ov1.qcow2"])
        self.assertDBusError("Busy", self.volume_obj(overlay).Delete, sv(), mentions=["chain-ov2.qcow2"])
        self.assertTrue(os.path.exists(self.pool_file("chain-base.qcow2")))
        self.volume_obj(overlay2).Delete(sv())
        self.volume_obj(overlay).Delete(sv())
        self.volume_obj(base).Delete(sv())
        self.assertFalse(any(n.startswith("chain-") for n in self.volume_files()))

    def test_backing_chain_lists_every_layer_nearest_first(self):
        base = self.create("bc-base.raw", 16 * MiB, format="raw")
        overlay = self.volume_obj(base).CreateOverlay("bc-ov1.qcow2", sv())
        overlay2 = self.volume_obj(overlay).CreateOverlay("bc-ov2.qcow2", sv())
        self.wait_object(str(overlay2), VOLUME)
        self.assertEqual(self.properties(str(overlay), VOLUME)["BackingChain"],
                         [[self.pool_file("bc-base.raw"), "raw"]])
        chain = self.properties(str(overlay2), VOLUME)["BackingChain"]
        self.assertEqual(chain, [[self.pool_file("bc-ov1.qcow2"), "qcow2"], [self.pool_file("bc-base.raw"), "raw"]],
                         "BackingChain is not the whole chain, nearest first (dbus-api.md)")

    # Locks ------------------------------------------------------------------------------------------
    def wait_locked(self, path, expected):
        deadline = time.monotonic() + LOCK_TIMEOUT
        while time.monotonic() < deadline:
            if self.properties(str(path), VOLUME)["Locked"] == expected:
                return
            time.sleep(0.2)
        self.fail(f"Locked did not become {expected} within {LOCK_TIMEOUT} s")

    def test_a_qemu_writer_makes_mutating_methods_busy(self):
        volume = self.create("locked.qcow2", 16 * MiB, format="qcow2")
        writer = self.start_writer("locked.qcow2")
        try:
            target = self.volume_obj(volume)
            calls = {
                "Delete": lambda: target.Delete(sv()),
                "Resize": lambda: target.Resize(dbus.UInt64(32 * MiB), sv()),
                "Wipe": lambda: target.Wipe(sv()),
                "Upload": lambda: target.Upload(unix_fd("/dev/zero", os.O_RDONLY),
                                                sv(length=dbus.UInt64(MiB))),
                "Check repair": lambda: target.Check(sv(repair="leaks")),
            }
            for what, call in calls.items():
                with self.subTest(what):
                    self.assertDBusError("Busy", call)
            self.assertEqual(self.qemu_img_info(self.pool_file("locked.qcow2"))["virtual-size"], 16 * MiB)
            self.assertTrue(os.path.exists(self.pool_file("locked.qcow2")))
            self.assertEqual(unwrap(target.Check(sv()))["corruptions"], 0, "a read-only Check must still work")
        finally:
            self.stop_writer(writer)
        self.volume_obj(volume).Resize(dbus.UInt64(32 * MiB), sv())
        self.assertEqual(self.qemu_img_info(self.pool_file("locked.qcow2"))["virtual-size"], 32 * MiB)

    def test_locked_follows_a_qemu_writer(self):
        volume = self.create("locked-prop.qcow2", 16 * MiB, format="qcow2")
        self.assertFalse(self.properties(str(volume), VOLUME)["Locked"])
        writer = self.start_writer("locked-prop.qcow2")
        try:
            self.wait_locked(volume, True)
        finally:
            self.stop_writer(writer)
        self.wait_locked(volume, False)

    # Commit and rebase -------------------------------------------------------------------------------
    def flattened(self, name):
        """The guest view of a volume (through its chain) as a raw file outside the pool."""
        path = os.path.join(self.scratch, name + ".flat.raw")
        self.qemu_img("convert", "-U", "-f", "qcow2", "-O", "raw", self.pool_file(name), path)
        return path

    def test_commit_merges_an_overlay_and_keeps_the_guest_view(self):
        base = self.create("cm-base.qcow2", 32 * MiB, format="qcow2")
        self.qemu_io("qcow2", self.pool_file("cm-base.qcow2"), "write -P 0x11 0 8M")
        overlay = self.volume_obj(base).CreateOverlay("cm-top.qcow2", sv())
        self.wait_object(str(overlay), VOLUME)
        top = self.pool_file("cm-top.qcow2")
        self.qemu_io("qcow2", top, "write -P 0x22 4M 8M")
        self.qemu_io("qcow2", top, "write -z 20M 1M")
        view = self.flattened("cm-top.qcow2")

        writer = self.start_writer("cm-top.qcow2")
        try:
            self.assertDBusError("Busy", self.volume_obj(overlay).Commit, sv())
        finally:
            self.stop_writer(writer)

        job = self.volume_obj(overlay).Commit(sv(wait=True), timeout=120)
        self.assertEqual(self.job(str(job))["State"], "completed")
        self.assert_same_content(view, self.pool_file("cm-base.qcow2"), "raw", "qcow2")
        self.assert_same_content(view, top, "raw", "qcow2")
        top_map = json.loads(self.qemu_img("map", "-U", "--output=json", top).stdout)
        self.assertFalse([e for e in top_map if e["depth"] == 0 and e["data"]],
                         "the overlay still holds the committed data")
        for name in ("cm-base.qcow2", "cm-top.qcow2"):
            self.assert_check_clean(self.pool_file(name))

    def test_rebase_keeps_the_guest_view_and_unsafe_changes_only_the_header(self):
        first = self.create("rb-first.qcow2", 32 * MiB, format="qcow2")
        self.qemu_io("qcow2", self.pool_file("rb-first.qcow2"), "write -P 0x31 0 8M")
        second = self.create("rb-second.qcow2", 32 * MiB, format="qcow2")
        self.qemu_io("qcow2", self.pool_file("rb-second.qcow2"), "write -P 0x41 4M 8M")
        self.qemu_io("qcow2", self.pool_file("rb-second.qcow2"), "write -P 0x42 24M 1M")
        overlay = self.volume_obj(first).CreateOverlay("rb-top.qcow2", sv())
        self.wait_object(str(overlay), VOLUME)
        top = self.pool_file("rb-top.qcow2")
        self.qemu_io("qcow2", top, "write -P 0x51 20M 1M")
        view = self.flattened("rb-top.qcow2")

        # Safe, onto the other volume given by its object path: the guest view stays.
        job = self.volume_obj(overlay).Rebase(str(second), sv(wait=True), timeout=120)
        self.assertEqual(self.job(str(job))["State"], "completed")
        self.assertEqual(self.qemu_img_info(top)["backing-filename"], self.pool_file("rb-second.qcow2"))
        self.assert_same_content(view, top, "raw", "qcow2")
        self.assert_check_clean(top)
        chain = self.properties(str(overlay), VOLUME)["BackingChain"]
        self.assertEqual([str(p) for p, _ in chain], [self.pool_file("rb-second.qcow2")])

        # Safe, onto no backing file: the overlay becomes standalone with the same view.
        self.volume_obj(overlay).Rebase("", sv(wait=True), timeout=120)
        self.assertNotIn("backing-filename", self.qemu_img_info(top))
        self.assert_same_content(view, top, "raw", "qcow2")

        # Unsafe: only the header changes, so the view now shows the new backing file where the overlay
        # allocates nothing.
        self.volume_obj(overlay).Rebase(self.pool_file("rb-second.qcow2"),
                                        sv(backing_format="qcow2", unsafe=True, wait=True), timeout=120)
        self.assertEqual(self.qemu_img_info(top)["backing-filename"], self.pool_file("rb-second.qcow2"))
        self.assert_same_content(view, top, "raw", "qcow2")  # standalone data hides every backing byte
        self.assert_check_clean(top)

        writer = self.start_writer("rb-top.qcow2")
        try:
            self.assertDBusError("Busy", self.volume_obj(overlay).Rebase, "", sv())
        finally:
            self.stop_writer(writer)

    # Check and repair --------------------------------------------------------------------------------
    def leak_clusters(self, path, count):
        """Marks `count` clusters past the end of the image as used in the first refcount block."""
        with open(path, "r+b") as f:
            header = f.read(104)
            cluster_bits = struct.unpack(">I", header[20:24])[0]
            refcount_table = struct.unpack(">Q", header[48:56])[0]
            refcount_order = struct.unpack(">I", header[96:100])[0]
            self.assertEqual(refcount_order, 4, "the leak patch handles 16-bit refcounts only")
            cluster = 1 << cluster_bits
            f.seek(refcount_table)
            block = struct.unpack(">Q", f.read(8))[0]
            end = os.fstat(f.fileno()).st_size
            first = (end + cluster - 1) // cluster
            self.assertLess(first + count, cluster // 2, "the leaked clusters must fit the first refcount block")
            for index in range(first, first + count):
                f.seek(block + 2 * index)
                f.write(struct.pack(">H", 1))
            f.truncate((first + count) * cluster)

    def test_check_reports_and_repairs_leaks_like_qemu_img(self):
        volume = self.create("leaky.qcow2", 32 * MiB, format="qcow2")
        path = self.pool_file("leaky.qcow2")
        self.qemu_io("qcow2", path, "write -P 0x42 0 3M")
        self.leak_clusters(path, 3)
        reference = json.loads(self.qemu_img("check", "-U", "--output=json", path, check=False).stdout)
        self.assertEqual(reference["leaks"], 3, "the patch did not leak clusters as qemu-img sees it")

        found = self.volume_obj(volume).Check(sv())
        found = unwrap(found)
        for key in ("leaks", "corruptions", "check-errors", "image-end-offset", "total-clusters",
                    "allocated-clusters"):
            # qemu-img check leaves out counts that are 0
            self.assertEqual(found.get(key, 0), reference.get(key, 0), f"Check's {key} differs from qemu-img check's")
        self.assertEqual(found["format"], "qcow2")
        self.assertEqual(found["filename"], path)
        self.assertEqual(found["leaks-fixed"], 0, "Check without repair fixed something")

        repaired = unwrap(self.volume_obj(volume).Check(sv(repair="leaks")))
        self.assertEqual(repaired["leaks-fixed"], 3)
        self.assert_check_clean(path)
        self.qemu_io("qcow2", path, "read -P 0x42 0 3M")
        self.assertEqual(unwrap(self.volume_obj(volume).Check(sv()))["leaks"], 0)
        self.assertDBusError("InvalidArgument", self.volume_obj(volume).Check, sv(repair="everything"))

    # Measure ----------------------------------------------------------------------------------------
    def test_measure_matches_qemu_img_measure(self):
        raw = self.create("measure.raw", 64 * MiB, format="raw")
        with open(self.pool_file("measure.raw"), "r+b") as f:
            f.seek(5 * MiB)
            f.write(os.urandom(3 * MiB))
            f.seek(40 * MiB)
            f.write(b"m" * MiB)
        qcow2 = self.create("measure.qcow2", 64 * MiB, format="qcow2")
        self.qemu_io("qcow2", self.pool_file("measure.qcow2"), "write -P 0x11 2M 5M")
        cases = [(raw, "measure.raw", "raw", {}), (qcow2, "measure.qcow2", "qcow2", {}),
                 (raw, "measure.raw", "raw", {"cluster_size": dbus.UInt64(2 * MiB)})]
        for volume, name, fmt, options in cases:
            with self.subTest(name=name, options=str(options)):
                argv = ["measure", "-U", "--output=json", "-f", fmt, "-O", "qcow2"]
                if "cluster_size" in options:
                    argv += ["-o", f"cluster_size={int(options['cluster_size'])}"]
                reference = json.loads(self.qemu_img(*argv, self.pool_file(name)).stdout)
                found = unwrap(self.volume_obj(volume).Measure(sv(format="qcow2", **options)))
                self.assertEqual(found["required"], reference["required"])
                self.assertEqual(found["fully-allocated"], reference["fully-allocated"])

    def test_job_interface_is_not_on_volumes(self):
        # A created volume is a volume object, not a job: guards against CreateVolume answering a job path
        # when no preallocation was asked for.
        volume = self.create("plain.qcow2", 8 * MiB, format="qcow2")
        self.assertNotIn(JOB, self.managed_objects()[str(volume)])
        self.assert_check_clean(self.pool_file("plain.qcow2"))


if __name__ == "__main__":
    main()
