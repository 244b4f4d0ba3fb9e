#!/usr/bin/python3
"""vmstorctl from the outside: what it makes libvirt sees, tables for people, --json for scripts, sizes
like 10G, and a D-Bus error as one line on stderr with exit status 1."""

import json
import os
import time

from harness import POOL, VOLUME, IntegrationTest, MiB, main, pool_path, volume_path

GiB = 1024 * MiB


def json_objects(text):
    """The objects of a --json answer: a list of objects, or one object, or objects keyed by path."""
    document = json.loads(text)
    if isinstance(document, dict) and "Name" not in document:
        document = list(document.values())
    return document if isinstance(document, list) else [document]


class VmstorctlTests(IntegrationTest):
    @classmethod
    def setUpEnvironment(cls):
        cls.target = os.path.join(cls.env.pools_dir, "ctl")

    def ok(self, *args):
        done = self.vmstorctl(*args)
        self.assertEqual(done.returncode, 0, f"vmstorctl {' '.join(args)}: {done.stderr}")
        return done.stdout

    def ensure_pool(self):
        if "ctl" not in self.virsh_pools():
            self.ok("pool-create", "ctl", "dir", "--target", self.target)

    def test_pool_create_is_seen_by_virsh(self):
        self.ensure_pool()
        self.assertIn("ctl", self.virsh_pools())
        self.assertEqual(self.virsh_pool_info("ctl")["State"], "running")
        self.assertEqual(self.virsh_xml("pool-dumpxml", "ctl").findtext("target/path"), self.target)
        self.wait_object(pool_path("ctl"), POOL)

    def test_pool_list_table_and_json(self):
        self.ensure_pool()
        table = self.ok("pool-list").splitlines()
        self.assertEqual(table[0].split()[:3], ["NAME", "TYPE", "STATE"])
        row = next((line.split() for line in table[1:] if line.split()[:1] == ["ctl"]), None)
        self.assertIsNotNone(row, f"pool ctl missing from the table:\n{table}")
        self.assertEqual(row[1:3], ["dir", "running"])

        pools = json_objects(self.ok("--json", "pool-list"))
        ctl = next(p for p in pools if p["Name"] == "ctl")
        self.assertEqual(ctl["State"], "running")
        self.assertEqual(ctl["Capacity"], int(self.virsh_pool_info("ctl")["Capacity"]))

    def test_pool_info_json_matches_the_bus(self):
        self.ensure_pool()
        info = json_objects(self.ok("--json", "pool-info", "ctl"))[0]
        props = self.properties(pool_path("ctl"), POOL)
        for key in ("Name", "UUID", "Type", "State", "Autostart", "TargetPath", "Capacity"):
            self.assertEqual(info[key], props[key], key)

    def test_vol_create_accepts_sizes_like_10G(self):
        self.ensure_pool()
        self.ok("vol-create", "ctl", "ten.qcow2", "10G")
        path = volume_path("ctl", "ten.qcow2")
        self.wait_object(path, VOLUME)
        self.assertEqual(self.properties(path, VOLUME)["Capacity"], 10 * GiB)
        self.assertEqual(self.qemu_img_info(os.path.join(self.target, "ten.qcow2"))["virtual-size"], 10 * GiB)

        self.ok("vol-create", "ctl", "raw.img", "1.5M", "--format", "raw")
        info = self.qemu_img_info(os.path.join(self.target, "raw.img"))
        self.assertEqual((info["format"], info["virtual-size"]), ("raw", 3 * MiB // 2))

        self.ok("vol-resize", "ctl", "ten.qcow2", "12G")
        self.assertEqual(self.qemu_img_info(os.path.join(self.target, "ten.qcow2"))["virtual-size"], 12 * GiB)

        volumes = json_objects(self.ok("--json", "vol-list", "ctl"))
        self.assertEqual(sorted(v["Name"] for v in volumes if v["Name"] in ("ten.qcow2", "raw.img")),
                         ["raw.img", "ten.qcow2"])
        table = self.ok("vol-list", "ctl").splitlines()
        self.assertEqual(table[0].split()[:2], ["NAME", "FORMAT"])
        self.assertTrue(any(line.split()[:2] == ["ten.qcow2", "qcow2"] for line in table[1:]), table)

        self.ok("vol-delete", "ctl", "raw.img")
        self.assertNotIn("raw.img", self.virsh_volumes("ctl"))

    def test_pool_lifecycle_commands_reach_libvirt(self):
        target = os.path.join(self.env.pools_dir, "cycle")
        xml_file = self.env.path("cycle.xml")
        with open(xml_file, "w") as f:
            f.write(f"<pool type='dir'><name>cycle</name><target><path>{target}</path></target></pool>")
        self.ok("pool-define-xml", xml_file)
        self.assertEqual(self.virsh_pool_info("cycle")["State"], "inactive")
        os.makedirs(target)
        os.chown(target, self.env.user.pw_uid, self.env.user.pw_gid)
        self.ok("pool-start", "cycle")
        self.assertEqual(self.virsh_pool_info("cycle")["State"], "running")
        self.ok("pool-autostart", "cycle", "on")
        self.assertEqual(self.virsh_pool_info("cycle")["Autostart"], "yes")
        self.ok("pool-autostart", "cycle", "off")
        self.assertEqual(self.virsh_pool_info("cycle")["Autostart"], "no")
        open(os.path.join(target, "dropped.img"), "wb").close()
        self.ok("pool-refresh", "cycle")
        self.assertIn("dropped.img", [v["Name"] for v in json_objects(self.ok("--json", "vol-list", "cycle"))])
        os.unlink(os.path.join(target, "dropped.img"))
        self.ok("pool-stop", "cycle")
        self.assertEqual(self.virsh_pool_info("cycle")["State"], "inactive")
        self.ok("pool-delete", "cycle")
        self.assertFalse(os.path.exists(target))
        self.ok("pool-undefine", "cycle")
        self.assertNotIn("cycle", self.virsh_pools())

    def test_pool_capabilities_lists_dir(self):
        self.assertIn("dir", self.ok("pool-capabilities"))
        capabilities = json.loads(self.ok("--json", "pool-capabilities"))
        self.assertIn("dir", capabilities)

    def test_a_dbus_error_is_one_line_on_stderr_and_exit_1(self):
        self.ensure_pool()
        done = self.vmstorctl("vol-create", "ctl", "bad/name", "1G")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stdout, "")
        lines = done.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"expected one line, got: {done.stderr!r}")
        self.assertIn("InvalidArgument", lines[0])
        self.assertIn("bad/name", lines[0])

        done = self.vmstorctl("pool-info", "no-such-pool")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn("no-such-pool", done.stderr)

    def timed_ok(self, *args):
        started = time.monotonic()
        self.ok(*args)
        return time.monotonic() - started

    def test_job_commands_take_a_rate_limit_like_4M(self):
        self.ensure_pool()
        size = 8 * MiB
        data = self.env.path("rate.bin")
        content = os.urandom(size)
        with open(data, "wb") as f:
            f.write(content)
        self.ok("vol-create", "ctl", "rate.raw", "8M", "--format", "raw")
        # 8 MiB at 4 MiB/s: at least 2 s, however fast the machine (without the cap it takes a moment).
        elapsed = self.timed_ok("vol-upload", "ctl", "rate.raw", data, "--rate-limit", "4M")
        self.assertGreaterEqual(elapsed, 2.0, "vol-upload ran faster than its --rate-limit allows")
        with open(os.path.join(self.target, "rate.raw"), "rb") as f:
            self.assertEqual(f.read(), content, "the upload's data")
        # --no-sync (sync=false) too: the daemon refuses an option it does not know, so this proves the name.
        elapsed = self.timed_ok("vol-convert", "ctl", "rate.raw", "ctl", "rate.qcow2", "--format", "qcow2",
                                "--rate-limit", "4M", "--no-sync")
        self.assertGreaterEqual(elapsed, 2.0, "vol-convert ran faster than its --rate-limit allows")
        elapsed = self.timed_ok("vol-download", "ctl", "rate.qcow2", self.env.path("rate.out"),
                                "--rate-limit", "4194304")
        self.assertGreaterEqual(elapsed, 2.0, "vol-download ran faster than its --rate-limit allows")
        with open(self.env.path("rate.out"), "rb") as f:
            self.assertEqual(f.read(), content, "the download's data")

        done = self.vmstorctl("vol-wipe", "ctl", "rate.raw", "--rate-limit", "10Q")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("10Q", done.stderr)
        with open(os.path.join(self.target, "rate.raw"), "rb") as f:
            self.assertNotEqual(f.read(MiB), bytes(MiB), "a refused --rate-limit still started the wipe")
        done = self.vmstorctl("vol-clone", "ctl", "rate.raw", "rate0.raw", "--rate-limit", "0")
        self.assertEqual(done.returncode, 1)
        self.assertIn("rate_limit", done.stderr)
        self.assertNotIn("rate0.raw", self.virsh_volumes("ctl"))
        for command in ("vol-clone", "vol-convert", "vol-wipe", "vol-upload", "vol-download", "vol-import",
                        "vol-commit", "vol-rebase", "snapshot-clone"):
            self.assertIn("--rate-limit", self.ok(command, "--help"), command)
        for command in ("vol-clone", "vol-convert", "snapshot-clone"):
            self.assertIn("--no-sync", self.ok(command, "--help"), command)
        for name in ("rate.raw", "rate.qcow2"):
            self.ok("vol-delete", "ctl", name)

    def test_a_bad_size_is_refused_before_any_call(self):
        self.ensure_pool()
        before = self.virsh_volumes("ctl")
        done = self.vmstorctl("vol-create", "ctl", "odd.qcow2", "10Q")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("10Q", done.stderr)
        self.assertEqual(self.virsh_volumes("ctl"), before)


if __name__ == "__main__":
    main()
