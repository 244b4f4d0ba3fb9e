"""Damaged and hostile qcow2 images for the corpus, with qemu-img's own verdict on each.

Damaged images are qemu-made images whose metadata is patched at the spec's offsets (leaks, wrong
refcounts, dangling L2 entries, bad compressed descriptors). Hostile images have headers built to
trip a parser (out-of-range fields, overflowing sizes, overlapping or unaligned tables). For each,
the manifest records what qemu-img info, check, check -r leaks and check -r all did, so that the
tests compare against QEMU rather than against a guess.
"""
import json
import os
import shutil
import struct
import subprocess

import qcow2_layout
from qcow2_layout import FLAG_COMPRESSED, FLAG_COPIED, L2_OFFSET_MASK

KiB = 1024
MiB = 1024 * KiB


def _run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def _first_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _json_or_none(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def qemu_verdict(directory, name, with_repairs):
    """What qemu-img says about an image: info, check, and (for damaged images) both repairs."""
    info = _run(["qemu-img", "info", "-f", "qcow2", "--output=json", name], directory)
    check = _run(["qemu-img", "check", "-f", "qcow2", "--output=json", name], directory)
    verdict = {
        "info_rc": info.returncode,
        "info_error": _first_line(info.stderr),
        "check_rc": check.returncode,
        "check": _json_or_none(check.stdout),
        "check_error": _first_line(check.stderr),
    }
    if with_repairs:
        verdict["repair"] = {}
        for mode in ("leaks", "all"):
            copy = f"{name}.qemu-repair-{mode}"
            shutil.copyfile(os.path.join(directory, name), os.path.join(directory, copy))
            repair = _run(["qemu-img", "check", "-f", "qcow2", "-r", mode, "--output=json", copy], directory)
            after = _run(["qemu-img", "check", "-f", "qcow2", "--output=json", copy], directory)
            verdict["repair"][mode] = {
                "rc": repair.returncode,
                "result": _json_or_none(repair.stdout),
                "after_rc": after.returncode,
            }
            os.unlink(os.path.join(directory, copy))
    return verdict


def _make_source(c, name, options="cluster_size=65536", writes=None):
    c.create(name, 4 * MiB, dict(kv.split("=") for kv in options.split(",")))
    c.write(name, writes or ["write -P 0x5a 0 256k", "write -P 0x5b 1M 64k", "write -P 0x5c 2M 4k"])
    return qcow2_layout.Image(c.path(name))


def _compressed_source(c, name, options="cluster_size=65536"):
    source = name + ".src.raw"
    c.create(source, 1 * MiB, fmt="raw")
    c.write(source, ["write -P 0x61 0 256k", "write -P 0x62 512k 128k"], fmt="raw")
    subprocess.run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", options, source, name],
                   cwd=c.dir, check=True)
    os.unlink(c.path(source))
    return qcow2_layout.Image(c.path(name))


# --- damaged images: each function patches a fresh qemu-made image ----------------------------
def leak_dropped_l2_entry(c, name):
    img = _make_source(c, name)
    where, _ = img.data_clusters()[1]
    img.write(">Q", where, 0)
    img.save()


def leak_appended_cluster(c, name):
    img = _make_source(c, name)
    img.set_refcount(img.append_cluster(0xEE), 1)
    img.save()


def refcount_too_high(c, name):
    img = _make_source(c, name)
    _, host = img.data_clusters()[0]
    img.set_refcount(host, 2)
    img.save()


def refcount_zero(c, name):
    img = _make_source(c, name)
    _, host = img.data_clusters()[0]
    img.set_refcount(host, 0)
    img.save()


def refcount_zero_1bit(c, name):
    img = _make_source(c, name, "cluster_size=4096,refcount_bits=1")
    _, host = img.data_clusters()[2]
    img.set_refcount(host, 0)
    img.save()


def leak_v2(c, name):
    img = _make_source(c, name, "compat=0.10")
    where, _ = img.data_clusters()[0]
    img.write(">Q", where, 0)
    img.save()


def l2_past_eof(c, name):
    img = _make_source(c, name)
    where, _ = img.data_clusters()[0]
    img.write(">Q", where, FLAG_COPIED | (1 << 40))
    img.save()


def l2_unallocated_cluster(c, name):
    img = _make_source(c, name)
    free = img.append_cluster(0xCD)  # inside the file, but refcount 0
    where, _ = img.data_clusters()[0]
    img.write(">Q", where, FLAG_COPIED | free)
    img.save()


def l2_unaligned(c, name):
    img = _make_source(c, name)
    where, value = img.data_clusters()[0]
    img.write(">Q", where, value + 512)
    img.save()
    return {"guest_data_lost": True}  # what qemu-img's repaired copy reads fails too


def l2_shared_cluster(c, name):
    img = _make_source(c, name)
    clusters = img.data_clusters()
    img.write(">Q", clusters[1][0], FLAG_COPIED | clusters[0][1])
    img.save()


def l1_past_eof(c, name):
    img = _make_source(c, name)
    base = img.get("l1_table_offset")
    img.write(">Q", base, FLAG_COPIED | (1 << 40))
    img.save()


def compressed_past_eof(c, name):
    img = _compressed_source(c, name)
    where, value = img.compressed_entries()[0]
    offset_bits = 62 - (img.cluster_bits - 8)
    sectors = value & ((1 << 62) - 1) & ~((1 << offset_bits) - 1)
    img.write(">Q", where, FLAG_COMPRESSED | sectors | (1 << 36))
    img.save()
    return {"guest_data_lost": True}  # what qemu-img's repaired copy reads fails too


def compressed_huge_sector_count(c, name):
    img = _compressed_source(c, name)
    where, value = img.compressed_entries()[0]
    offset_bits = 62 - (img.cluster_bits - 8)
    host = value & ((1 << offset_bits) - 1)
    img.write(">Q", where, FLAG_COMPRESSED | (((1 << (62 - offset_bits)) - 1) << offset_bits) | host)
    img.save()


def compressed_garbage_data(c, name):
    img = _compressed_source(c, name)
    _, value = img.compressed_entries()[0]
    host = value & ((1 << (62 - (img.cluster_bits - 8))) - 1)
    img.data[host : host + 64] = b"\xff" * 64
    img.save()
    return {"guest_data_lost": True}  # what qemu-img's repaired copy reads fails too


def refcount_block_past_eof(c, name):
    img = _make_source(c, name)
    img.write(">Q", img.get("refcount_table_offset"), 1 << 40)
    img.save()


def corrupt_bit_set(c, name):
    img = _make_source(c, name)
    img.set("incompatible_features", img.get("incompatible_features") | 2)
    img.save()


def dirty_lazy_refcounts(c, name):
    c.create(name, 4 * MiB, {"lazy_refcounts": "on"})
    # 'abort' kills qemu-io before it can write refcounts back: the dirty bit stays set.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x71 0 192k", "-c", "abort", name],
                   cwd=c.dir, capture_output=True)


def _compressed_offset_bits(img):
    return 62 - (img.cluster_bits - 8)


def compressed_copied_flag(c, name):
    img = _compressed_source(c, name)
    where, value = img.compressed_entries()[0]
    img.write(">Q", where, value | FLAG_COPIED)
    img.save()


def compressed_nonzero_bitmap(c, name):
    img = _compressed_source(c, name, "cluster_size=65536,extended_l2=on")
    where, _ = img.compressed_entries()[0]
    img.write(">Q", where + 8, 1)  # the entry's subcluster bitmap
    img.save()  # check reports the bitmap; reads ignore it, as qemu-img's do


def compressed_overlaps_l1(c, name):
    img = _compressed_source(c, name)
    where, value = img.compressed_entries()[0]
    host_mask = (1 << _compressed_offset_bits(img)) - 1
    img.write(">Q", where, (value & ~host_mask) | img.get("l1_table_offset"))
    img.save()
    return {"guest_data_lost": True}  # the cluster now decompresses metadata: unreadable


def compressed_partly_past_eof(c, name):
    img = _compressed_source(c, name)
    where, _ = img.compressed_entries()[-1]
    tail = len(img.data) - 512  # four sectors from here: the last one or more lie past the end
    img.write(">Q", where, FLAG_COMPRESSED | (3 << _compressed_offset_bits(img)) | tail)
    img.save()


# --- snapshot table damage: an image with two internal snapshots (qemu-img snapshot -c) ------------
def _snapshot_source(c, name):
    img = _make_source(c, name)
    del img
    for tag, command in (("s1", "write -P 0x6b 64k 64k"), ("s2", None)):
        subprocess.run(["qemu-img", "snapshot", "-c", tag, name], cwd=c.dir, check=True)
        if command:
            c.write(name, [command])
    return qcow2_layout.Image(c.path(name))


def snapshot_l1_unaligned(c, name):
    img = _snapshot_source(c, name)
    entry = img.snapshot_entry_offsets()[0]
    img.write(">Q", entry, img.read(">Q", entry) + 8)
    img.save()


def snapshot_l1_too_large(c, name):
    img = _snapshot_source(c, name)
    img.write(">I", img.snapshot_entry_offsets()[1] + 8, 0x1000000)  # 128 MiB of L1 entries
    img.save()


def snapshot_l1_past_eof(c, name):
    img = _snapshot_source(c, name)
    img.write(">Q", img.snapshot_entry_offsets()[0], 1 << 40)
    img.save()


def snapshot_extra_too_large(c, name):
    img = _snapshot_source(c, name)
    img.write(">I", img.snapshot_entry_offsets()[1] + 36, 0x10000)
    img.save()


def snapshot_extra_incomplete(c, name):
    """Version 3 needs 16 bytes of extra data: the first entry keeps only 8 (the table is re-packed)."""
    img = _snapshot_source(c, name)
    entry = img.snapshot_entry_offsets()[0]
    extra = img.read(">I", entry + 36)
    img.write(">I", entry + 36, 8)
    del img.data[entry + 48 : entry + 40 + extra]
    img.data.extend(bytes(extra - 8))  # the file keeps its length
    img.save()


def snapshot_count_past_table(c, name):
    """One entry more than the table holds: it reads as zeroes from past the end of the file."""
    img = _snapshot_source(c, name)
    img.set("nb_snapshots", 3)
    img.save()


def snapshot_table_past_eof(c, name):
    img = _snapshot_source(c, name)
    img.set("snapshots_offset", 1 << 40)
    img.save()


def snapshot_table_unaligned(c, name):
    img = _snapshot_source(c, name)
    img.set("snapshots_offset", img.get("snapshots_offset") + 8)
    img.save()


def snapshot_count_over_limit(c, name):
    img = _snapshot_source(c, name)
    img.set("nb_snapshots", 65537)
    img.save()


DAMAGED = [
    leak_dropped_l2_entry, leak_appended_cluster, leak_v2, refcount_too_high, refcount_zero,
    refcount_zero_1bit, l2_past_eof, l2_unallocated_cluster, l2_unaligned, l2_shared_cluster,
    l1_past_eof, compressed_past_eof, compressed_huge_sector_count, compressed_garbage_data,
    compressed_copied_flag, compressed_nonzero_bitmap, compressed_overlaps_l1, compressed_partly_past_eof,
    refcount_block_past_eof, corrupt_bit_set, dirty_lazy_refcounts,
    snapshot_l1_unaligned, snapshot_l1_too_large, snapshot_l1_past_eof, snapshot_extra_too_large,
    snapshot_extra_incomplete, snapshot_count_past_table, snapshot_table_past_eof, snapshot_table_unaligned,
    snapshot_count_over_limit,
]


# --- hostile headers: (name, field patches) on a fresh qemu-made image --------------------------
HOSTILE_FIELDS = {
    "cluster-bits-8": {"cluster_bits": 8},
    "cluster-bits-22": {"cluster_bits": 22},
    "cluster-bits-63": {"cluster_bits": 63},
    "l1-size-overflow": {"l1_size": 0xFFFFFFFF},
    "l1-size-too-large": {"l1_size": 0x1000000},
    "l1-size-too-small": {"size": 1 << 50},
    "l1-offset-unaligned": {"l1_table_offset": "+8"},
    "l1-offset-past-eof": {"l1_table_offset": 1 << 40},
    "l1-offset-overlaps-header": {"l1_table_offset": 0},
    "refcount-offset-unaligned": {"refcount_table_offset": "+8"},
    "refcount-offset-past-eof": {"refcount_table_offset": 1 << 40},
    "refcount-offset-overlaps-header": {"refcount_table_offset": 0},
    "refcount-table-huge": {"refcount_table_clusters": 0xFFFFFF},
    "refcount-table-overflow": {"refcount_table_clusters": 0xFFFFFFFF},
    "snapshots-huge-count": {"nb_snapshots": 0x7FFFFFFF, "snapshots_offset": 0x10000},
    "snapshots-count-65537": {"nb_snapshots": 65537, "snapshots_offset": 0x10000},
    "snapshots-offset-past-eof": {"nb_snapshots": 1, "snapshots_offset": 1 << 40},
    "snapshots-offset-unaligned": {"nb_snapshots": 1, "snapshots_offset": 0x10008},
    "incompatible-bit-5": {"incompatible_features": 1 << 5},
    "incompatible-bit-63": {"incompatible_features": 1 << 63},
    "version-1": {"version": 1},
    "version-4": {"version": 4},
    "header-length-unaligned": {"header_length": 105},
    "header-length-short": {"header_length": 96},
    "refcount-order-7": {"refcount_order": 7},
    "crypt-method-unknown": {"crypt_method": 3},
    "size-2-pow-63": {"size": 1 << 63},
    "compression-type-unknown": {"incompatible_features": 1 << 3, "compression_type": 7},
    "external-data-file-no-name": {"incompatible_features": 1 << 2},
}


def _hostile_from_fields(c, name, fields):
    img = _make_source(c, name)
    for field, value in fields.items():
        if isinstance(value, str):  # "+N": shift the current value
            value = img.get(field) + int(value)
        img.set(field, value)
    img.save()


def backing_name_too_long(c, name):
    img = _make_source(c, name)
    offset = img.cluster_size - 1100
    backing = b"b" * 1030
    img.data[offset : offset + len(backing)] = backing
    img.set("backing_file_offset", offset)
    img.set("backing_file_size", len(backing))
    img.save()


def extension_past_cluster(c, name):
    img = _make_source(c, name)
    where = next(img.extensions())[0]
    img.write(">I", where + 4, 0xFFFFFFF0)
    img.save()


def backing_without_format(c, name):
    """The raw-probing trap: the backing file is a qcow2 image whose own backing is a 'secret' file,
    and the overlay does not record the backing's format, so only probing would read the secret."""
    secret = name + ".secret"
    c.create(secret, 1 * MiB, fmt="raw")
    c.write(secret, ["write -P 0x5e 0 1M"], fmt="raw")
    trap = name + ".trap"
    c.create(trap, 1 * MiB, backing=secret, backing_fmt="raw")
    c.create(name, 1 * MiB, backing=trap, backing_fmt="raw")
    img = qcow2_layout.Image(c.path(name))
    for where, ext_type, _ in img.extensions():
        if ext_type == qcow2_layout.EXT_BACKING_FORMAT:
            img.write(">I", where, 0x7A7A7A7A)  # now an unknown extension: no recorded format
    img.save()
    return {"policy": "backing file without a recorded format must not be probed",
            "secret_pattern": 0x5E, "helper_files": [secret, trap]}


def snapshot_table_too_large(c, name):
    """1,100 snapshots (far under the count limit) of 1 KiB extra data and a 60,000-byte name each:
    the table is 67.2 MB, just past the 64 MiB limit QEMU and vmstor keep, so the file is that large
    too. Few long entries rather than many short ones: qemu-img's time grows with the count."""
    img = _make_source(c, name)
    count, extra, name_size = 1100, 1024, 60000
    fixed = struct.pack(">QIHHIIQII", 0, 0, 0, name_size, 0, 0, 0, 0, extra)
    entry = fixed + bytes(extra) + b"s" * name_size
    entry += bytes(-len(entry) % 8)
    where = (len(img.data) + img.cluster_size - 1) // img.cluster_size * img.cluster_size
    img.data.extend(bytes(where - len(img.data)))
    img.data.extend(entry * count)
    img.set("nb_snapshots", count)
    img.set("snapshots_offset", where)
    img.save()


HOSTILE_SPECIAL = [backing_name_too_long, extension_past_cluster, backing_without_format,
                   snapshot_table_too_large]


def build_all(c):
    """Builds every damaged and hostile image; returns their manifest entries."""
    entries = []
    for damage in DAMAGED:
        name = "damaged-" + damage.__name__.replace("_", "-") + ".qcow2"
        extra = damage(c, name) or {}
        entry = {"name": name, "file": name, "format": "qcow2", "kind": "damaged",
                 "features": {"damage": damage.__name__},
                 "qemu": qemu_verdict(c.dir, name, with_repairs=True)}
        entry.update(extra)
        entries.append(entry)
    for label, fields in HOSTILE_FIELDS.items():
        name = f"hostile-{label}.qcow2"
        _hostile_from_fields(c, name, fields)
        entries.append({"name": name, "file": name, "format": "qcow2", "kind": "hostile",
                        "features": {"header": {k: str(v) for k, v in fields.items()}},
                        "qemu": qemu_verdict(c.dir, name, with_repairs=False)})
    for special in HOSTILE_SPECIAL:
        name = "hostile-" + special.__name__.replace("_", "-") + ".qcow2"
        extra = special(c, name) or {}
        entry = {"name": name, "file": name, "format": "qcow2", "kind": "hostile",
                 "features": {"header": special.__name__}, "qemu": qemu_verdict(c.dir, name, False)}
        entry.update(extra)
        entries.append(entry)
    return entries
