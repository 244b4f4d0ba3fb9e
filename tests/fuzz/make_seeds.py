#!/usr/bin/python3
"""Builds the fuzz seed corpus: small qcow2 images made by qemu-img and qemu-io, and hostile copies of
them patched at the spec's offsets, one or more per class of bug QEMU has had CVEs for.

usage: make_seeds.py DIR

Seed names say their class: good-* (valid images of every layout the engine reads), overflow-* (table
sizes that overflow), offset-* (offsets past the end or unaligned), overlap-* (overlapping metadata),
table-* (refcount, snapshot and bitmap tables too large), backing-* (loops in backing chains, huge or
hostile backing names), feature-* (unknown incompatible bits and unsupported features), header-* (other
malformed header fields). Backing files are named as the fuzz target provides them: base.raw,
base.qcow2, and image.qcow2 (the fuzzed image itself). Deterministic: the same bytes every run. Every
seed is at most MAX_SEED bytes (clusters of 512 bytes where the layout allows).
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qcow2"))
import corpus_damage  # noqa: E402
import qcow2_layout  # noqa: E402
from make_corpus import Corpus, fix_snapshot_dates  # noqa: E402
from qcow2_layout import EXT_BACKING_FORMAT, FLAG_COMPRESSED, FLAG_COPIED  # noqa: E402

KiB = 1024
MAX_SEED = 96 * KiB  # the extended L2 seed needs five 16 KiB clusters; the rest are a few KiB
EXT_BITMAPS = 0x23852875
EXT_DATA_FILE = 0x44415441
EXT_FEATURE_TABLE = qcow2_layout.EXT_FEATURE_TABLE
WRITES = ["write -P 0x11 0 3k", "write -z 4k 1k", "write -P 0x22 6k 512", "discard 6k 512",
          "write -P 0x33 40k 2k"]


# Seeds that reproduce engine bugs not fixed yet: left out of the committed corpus (an open crash would
# fail the suite) and written only with --with-open. Remove a name once its bug is fixed.
OPEN_FINDINGS = {}


class Seeds(Corpus):
    """Builds images in a scratch directory and keeps the chosen ones as seeds in the output."""

    def __init__(self, scratch, out, with_open):
        super().__init__(scratch)
        self.out = out
        self.with_open = with_open

    def keep(self, name, image=None):
        if image is not None:
            image.save()
        if name in OPEN_FINDINGS and not self.with_open:
            return
        size = os.path.getsize(self.path(name))
        if size > MAX_SEED:
            raise RuntimeError(f"{name} has {size} bytes, more than {MAX_SEED}")
        shutil.copyfile(self.path(name), os.path.join(self.out, name))

    def small(self, name, options=None, writes=WRITES, size=64 * KiB, **backing):
        """A qcow2 image with 512-byte clusters (unless options say otherwise) and some guest data."""
        self.create(name, size, {"cluster_size": 512, **(options or {})}, **backing)
        if writes:
            self.write(name, writes)
        return qcow2_layout.Image(self.path(name))

    def variant(self, source, name):
        """A patchable copy of an already built image."""
        shutil.copyfile(self.path(source), self.path(name))
        return qcow2_layout.Image(self.path(name))

    def header(self, source, name, **fields):
        """A copy of source with header fields set (an int, or a function of the image)."""
        img = self.variant(source, name)
        for field, value in fields.items():
            img.set(field, value(img) if callable(value) else value)
        self.keep(name, img)


def set_extension(img, ext_type, payload):
    """Replaces the extension of that type, or adds it before the end marker."""
    for where, found, length in img.extensions():
        if found == ext_type:
            del img.data[where : where + 8 + (length + 7) // 8 * 8]
            break
    existing = list(img.extensions())
    end = existing[-1][0] + 8 + (existing[-1][2] + 7) // 8 * 8 if existing else img.get("header_length")
    padded = payload + bytes(-len(payload) % 8)
    img.data[end:end] = struct.pack(">II", ext_type, len(payload)) + padded
    spill = img.data[img.cluster_size : img.cluster_size + 8 + len(padded)]
    if any(spill):
        raise RuntimeError("the header extensions do not fit in the first cluster")
    del img.data[img.cluster_size : img.cluster_size + len(spill)]  # the first cluster keeps its size


def set_backing(img, name, offset=None, size=None):
    offset = offset or img.cluster_size - len(name)
    if any(img.data[offset : offset + len(name)]):
        raise RuntimeError("the backing file name would overwrite the header")
    img.data[offset : offset + len(name)] = name
    img.set("backing_file_offset", offset)
    img.set("backing_file_size", len(name) if size is None else size)


def l1_entry_offset(img, index=0):
    return img.get("l1_table_offset") + 8 * index


def build_good(s):
    s.small("good-v3.qcow2")
    s.keep("good-v3.qcow2")
    s.keep("good-v2.qcow2", s.small("good-v2.qcow2", {"compat": "0.10"}))
    for bits in (1, 8, 64):
        s.keep(f"good-refcount{bits}.qcow2", s.small(f"good-refcount{bits}.qcow2", {"refcount_bits": bits}))
    s.keep("good-odd-size.qcow2", s.small("good-odd-size.qcow2", size=64 * KiB + 1536))
    s.keep("good-lazy-refcounts.qcow2", s.small("good-lazy-refcounts.qcow2", {"lazy_refcounts": "on"}))
    name = "good-dirty.qcow2"
    s.create(name, 64 * KiB, {"cluster_size": 512, "lazy_refcounts": "on"})
    # 'abort' kills qemu-io before it writes refcounts back: the dirty bit stays set.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x71 0 4k", "-c", "abort", name], cwd=s.dir,
                   capture_output=True)
    s.keep(name)
    source = "compress-source.raw"
    s.create(source, 64 * KiB, fmt="raw")
    s.write(source, ["write -P 0x61 0 8k", "write -P 0x62 16k 2k", "write -P 0x63 33k 1k"], fmt="raw")
    for ctype in ("zlib", "zstd"):
        name = f"good-compressed-{ctype}.qcow2"
        subprocess.run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                        f"cluster_size=512,compression_type={ctype}", source, name], cwd=s.dir, check=True)
        s.keep(name)
    for compat, version in (("0.10", 2), ("1.1", 3)):
        name = f"good-snapshots-v{version}.qcow2"
        s.small(name, {"compat": compat})
        subprocess.run(["qemu-img", "snapshot", "-c", "first", name], cwd=s.dir, check=True)
        s.write(name, ["write -P 0x44 0 1k", "write -z 40k 2k"])
        subprocess.run(["qemu-img", "snapshot", "-c", "second", name], cwd=s.dir, check=True)
        fix_snapshot_dates(s.path(name))
        s.keep(name)
    name = "good-bitmaps.qcow2"
    s.small(name)
    subprocess.run(["qemu-img", "bitmap", "--add", "-g", "4096", name, "dirty0"], cwd=s.dir, check=True)
    s.write(name, ["write -P 0x55 8k 4k"])
    s.keep(name)
    # Extended L2 entries need 16 KiB clusters: one subcluster of data, zero and discarded subclusters.
    name = "good-extended-l2.qcow2"
    s.keep(name, s.small(name, {"extended_l2": "on", "cluster_size": 16 * KiB},
                         ["write -P 0x21 512 1k", "write -z 2k 1k"]))
    # The backing files as the fuzz target provides them (the seeds only record their names).
    s.create("base.raw", 1024 * KiB, fmt="raw")
    s.create("base.qcow2", 1024 * KiB, {"cluster_size": 4096}, backing="base.raw", backing_fmt="raw")
    s.keep("good-backing-raw.qcow2", s.small("good-backing-raw.qcow2", writes=["write -P 0x66 4k 1k"],
                                             size=1024 * KiB, backing="base.raw", backing_fmt="raw"))
    s.keep("good-backing-qcow2.qcow2", s.small("good-backing-qcow2.qcow2", writes=["write -P 0x67 60k 8k"],
                                               size=1024 * KiB, backing="base.qcow2", backing_fmt="qcow2"))


def build_header_fields(s):
    """Every header patch of the differential corpus, applied to the small image."""
    for label, fields in corpus_damage.HOSTILE_FIELDS.items():
        # "+N" shifts the field's current value.
        s.header("good-v3.qcow2", f"header-{label}.qcow2",
                 **{f: (lambda img, f=f, v=v: img.get(f) + int(v)) if isinstance(v, str) else v
                    for f, v in fields.items()})


def build_overflow(s):
    s.header("good-v3.qcow2", "overflow-size-max.qcow2", size=(1 << 64) - 512)
    # The largest size QEMU allows, with an L1 table of 1 GiB that the file does not hold.
    s.header("good-v3.qcow2", "overflow-size-2-pow-61.qcow2", size=1 << 61, l1_size=1 << 27)
    img = s.variant("good-compressed-zlib.qcow2", "overflow-compressed-sectors.qcow2")
    where, value = img.compressed_entries()[0]
    bits = 62 - (img.cluster_bits - 8)
    img.write(">Q", where, FLAG_COMPRESSED | (((1 << (62 - bits)) - 1) << bits) | (value & ((1 << bits) - 1)))
    s.keep("overflow-compressed-sectors.qcow2", img)
    img = s.variant("good-snapshots-v3.qcow2", "overflow-snapshot-sizes.qcow2")
    entry = img.snapshot_entry_offsets()[0]
    img.data[entry + 12 : entry + 16] = b"\xff\xff\xff\xff"  # id and name sizes 65535
    s.keep("overflow-snapshot-sizes.qcow2", img)
    img = s.variant("good-snapshots-v3.qcow2", "overflow-snapshot-l1-size.qcow2")
    img.write(">I", img.snapshot_entry_offsets()[1] + 8, 0xFFFFFFFF)
    s.keep("overflow-snapshot-l1-size.qcow2", img)
    img = s.variant("good-v3.qcow2", "overflow-refcount-table-entry.qcow2")
    img.write(">Q", img.get("refcount_table_offset"), 0xFFFFFFFFFFFFFE00)
    s.keep("overflow-refcount-table-entry.qcow2", img)


def build_offsets(s):
    def l2_patch(source, name, value_of):
        img = s.variant(source, name)
        compressed = source.startswith("good-compressed")
        where, value = (img.compressed_entries() if compressed else img.data_clusters())[0]
        img.write(">Q", where, value_of(value, img))
        s.keep(name, img)

    l2_patch("good-v3.qcow2", "offset-l2-entry-past-eof.qcow2", lambda v, i: FLAG_COPIED | (1 << 40))
    l2_patch("good-v3.qcow2", "offset-l2-entry-unaligned.qcow2", lambda v, i: v + 8)
    l2_patch("good-v3.qcow2", "offset-l2-entry-past-2-pow-56.qcow2", lambda v, i: v | (0xFF << 48))
    l2_patch("good-v3.qcow2", "offset-l2-entry-reserved-bits.qcow2", lambda v, i: v | (1 << 57))
    l2_patch("good-v2.qcow2", "offset-l2-zero-flag-in-v2.qcow2", lambda v, i: v | 1)
    def sectors_field(value, img):
        return value & ((1 << 62) - 1) & ~((1 << (62 - (img.cluster_bits - 8))) - 1)

    l2_patch("good-compressed-zlib.qcow2", "offset-compressed-past-eof.qcow2",
             lambda v, i: FLAG_COMPRESSED | sectors_field(v, i) | (1 << 36))
    l2_patch("good-compressed-zlib.qcow2", "offset-compressed-zero-host.qcow2",
             lambda v, i: FLAG_COMPRESSED | sectors_field(v, i))
    for ctype in ("zlib", "zstd"):
        img = s.variant(f"good-compressed-{ctype}.qcow2", f"offset-compressed-garbage-{ctype}.qcow2")
        _, value = img.compressed_entries()[0]
        host = value & ((1 << (62 - (img.cluster_bits - 8))) - 1)
        img.data[host : host + 48] = b"\xa5" * 48
        s.keep(f"offset-compressed-garbage-{ctype}.qcow2", img)
    img = s.variant("good-v3.qcow2", "offset-l1-entry-past-eof.qcow2")
    img.write(">Q", l1_entry_offset(img), FLAG_COPIED | (1 << 40))
    s.keep("offset-l1-entry-past-eof.qcow2", img)
    img = s.variant("good-v3.qcow2", "offset-l1-entry-unaligned.qcow2")
    img.write(">Q", l1_entry_offset(img), img.read(">Q", l1_entry_offset(img)) + 8)
    s.keep("offset-l1-entry-unaligned.qcow2", img)
    img = s.variant("good-v3.qcow2", "offset-refcount-block-past-eof.qcow2")
    img.write(">Q", img.get("refcount_table_offset"), 1 << 40)
    s.keep("offset-refcount-block-past-eof.qcow2", img)
    img = s.variant("good-v3.qcow2", "offset-refcount-block-unaligned.qcow2")
    img.write(">Q", img.get("refcount_table_offset"), img.read(">Q", img.get("refcount_table_offset")) + 8)
    s.keep("offset-refcount-block-unaligned.qcow2", img)
    img = s.variant("good-snapshots-v3.qcow2", "offset-snapshot-l1-past-eof.qcow2")
    img.write(">Q", img.snapshot_entry_offsets()[0], 1 << 40)
    s.keep("offset-snapshot-l1-past-eof.qcow2", img)
    img = s.variant("good-snapshots-v3.qcow2", "offset-snapshot-l1-unaligned.qcow2")
    img.write(">Q", img.snapshot_entry_offsets()[0], img.read(">Q", img.snapshot_entry_offsets()[0]) + 8)
    s.keep("offset-snapshot-l1-unaligned.qcow2", img)
    img = s.variant("good-v3.qcow2", "offset-file-truncated.qcow2")
    del img.data[len(img.data) // 2 :]
    s.keep("offset-file-truncated.qcow2", img)
    img = s.variant("good-v3.qcow2", "offset-header-only.qcow2")
    del img.data[104:]
    s.keep("offset-header-only.qcow2", img)


def build_overlaps(s):
    s.header("good-v3.qcow2", "overlap-l1-on-refcount-table.qcow2",
             l1_table_offset=lambda img: img.get("refcount_table_offset"))
    img = s.variant("good-v3.qcow2", "overlap-l2-is-refcount-block.qcow2")
    img.write(">Q", l1_entry_offset(img), FLAG_COPIED | img.read(">Q", img.get("refcount_table_offset")))
    s.keep("overlap-l2-is-refcount-block.qcow2", img)
    img = s.variant("good-v3.qcow2", "overlap-l2-is-l1.qcow2")
    img.write(">Q", l1_entry_offset(img), FLAG_COPIED | img.get("l1_table_offset"))
    s.keep("overlap-l2-is-l1.qcow2", img)
    img = s.variant("good-v3.qcow2", "overlap-data-is-header.qcow2")
    where, _ = img.data_clusters()[0]
    img.write(">Q", where, FLAG_COPIED | img.get("l1_table_offset"))
    s.keep("overlap-data-is-header.qcow2", img)
    img = s.variant("good-v3.qcow2", "overlap-data-shared.qcow2")
    clusters = img.data_clusters()
    img.write(">Q", clusters[1][0], FLAG_COPIED | clusters[0][1])
    s.keep("overlap-data-shared.qcow2", img)
    s.header("good-snapshots-v3.qcow2", "overlap-snapshot-table-on-l1.qcow2",
             snapshots_offset=lambda img: img.get("l1_table_offset"))
    img = s.variant("good-snapshots-v3.qcow2", "overlap-snapshot-l1-is-active-l1.qcow2")
    img.write(">Q", img.snapshot_entry_offsets()[0], img.get("l1_table_offset"))
    s.keep("overlap-snapshot-l1-is-active-l1.qcow2", img)
    s.header("good-v3.qcow2", "overlap-refcount-table-on-l1.qcow2",
             refcount_table_offset=lambda img: img.get("l1_table_offset"))


def build_tables(s):
    img = s.variant("good-snapshots-v3.qcow2", "table-snapshot-name-not-utf8.qcow2")
    entry = img.snapshot_entry_offsets()[0]
    id_size, name_size = struct.unpack_from(">HH", img.data, entry + 12)
    name_at = entry + 40 + img.read(">I", entry + 36) + id_size
    img.data[name_at : name_at + name_size] = b"\xff\xfe\xc3"[:name_size].ljust(name_size, b"\x80")
    s.keep("table-snapshot-name-not-utf8.qcow2", img)
    img = s.variant("good-snapshots-v3.qcow2", "table-snapshot-extra-data-huge.qcow2")
    img.write(">I", img.snapshot_entry_offsets()[0] + 36, 0xFFFFFFFF)
    s.keep("table-snapshot-extra-data-huge.qcow2", img)
    s.header("good-snapshots-v3.qcow2", "table-snapshot-count-past-table.qcow2", nb_snapshots=65536)
    s.header("good-v3.qcow2", "table-refcount-table-8m.qcow2", refcount_table_clusters=(8 << 20) // 512)
    s.header("good-v3.qcow2", "table-l1-32m.qcow2", l1_size=(32 << 20) // 8)

    def bitmaps(name, nb, size, offset_of):
        img = s.variant("good-bitmaps.qcow2", name)
        for where, ext_type, _ in img.extensions():
            if ext_type == EXT_BITMAPS:
                old_size, old_offset = struct.unpack_from(">QQ", img.data, where + 16)
                struct.pack_into(">IIQQ", img.data, where + 8, nb, 0, size or old_size, offset_of(old_offset))
        s.keep(name, img)

    bitmaps("table-bitmap-directory-64m.qcow2", 1, 64 << 20, lambda o: o)
    bitmaps("table-bitmap-directory-past-eof.qcow2", 1, 0, lambda o: 1 << 40)
    bitmaps("table-bitmap-directory-unaligned.qcow2", 1, 0, lambda o: o + 8)
    bitmaps("table-bitmap-count-65535.qcow2", 65535, 0, lambda o: o)
    img = s.variant("good-bitmaps.qcow2", "table-bitmap-table-huge.qcow2")
    for where, ext_type, _ in img.extensions():
        if ext_type == EXT_BITMAPS:
            directory = struct.unpack_from(">Q", img.data, where + 24)[0]
            img.write(">Q", directory, 0xFFFFFFFFFFFFFE00)  # the bitmap's table offset
            img.write(">I", directory + 8, 0xFFFFFFFF)  # its table size
    s.keep("table-bitmap-table-huge.qcow2", img)


def build_backing(s):
    def backed(name, backing, fmt=b"qcow2", source="good-v3.qcow2"):
        img = s.variant(source, name)
        if fmt is not None:
            set_extension(img, EXT_BACKING_FORMAT, fmt)
        set_backing(img, backing)
        return img

    # The image names itself: a chain that never ends (QEMU: CVE-class "backing file loop").
    s.keep("backing-loop-self.qcow2", backed("backing-loop-self.qcow2", b"image.qcow2"))
    s.keep("backing-self-as-raw.qcow2", backed("backing-self-as-raw.qcow2", b"image.qcow2", b"raw"))
    s.keep("backing-no-format.qcow2", backed("backing-no-format.qcow2", b"base.qcow2", None))
    s.keep("backing-unknown-format.qcow2", backed("backing-unknown-format.qcow2", b"base.raw", b"vmdk"))
    s.keep("backing-outside-absolute.qcow2", backed("backing-outside-absolute.qcow2", b"/etc/passwd", b"raw"))
    s.keep("backing-outside-relative.qcow2",
           backed("backing-outside-relative.qcow2", b"../../../../etc/passwd", b"raw"))
    s.keep("backing-name-not-utf8.qcow2", backed("backing-name-not-utf8.qcow2", b"\xffbase\xc3.raw", b"raw"))
    s.keep("backing-protocol.qcow2", backed("backing-protocol.qcow2", b"nbd://127.0.0.1:1/x", b"raw"))
    name = "good-cl4096.qcow2"  # room in the first cluster for names of 1 KiB
    s.keep(name, s.small(name, {"cluster_size": 4096}, writes=["write -P 0x12 0 4k", "write -P 0x13 60k 4k"]))
    img = s.variant(name, "backing-name-1023.qcow2")
    set_backing(img, b"n" * 1023)
    s.keep("backing-name-1023.qcow2", img)
    img = s.variant(name, "backing-name-1024.qcow2")
    set_backing(img, b"n" * 1024)
    s.keep("backing-name-1024.qcow2", img)
    img = s.variant(name, "backing-name-size-max.qcow2")
    set_backing(img, b"n" * 16, size=0xFFFFFFFF)
    s.keep("backing-name-size-max.qcow2", img)
    img = s.variant(name, "backing-name-past-cluster.qcow2")
    set_backing(img, b"base.raw", offset=4090)
    s.keep("backing-name-past-cluster.qcow2", img)
    img = s.variant(name, "backing-name-over-header.qcow2")
    set_backing(img, b"base.raw", offset=64)
    s.keep("backing-name-over-header.qcow2", img)
    img = s.variant(name, "backing-format-1024.qcow2")
    set_extension(img, EXT_BACKING_FORMAT, b"r" * 1024)
    s.keep("backing-format-1024.qcow2", img)


def build_features(s):
    img = s.variant("good-v3.qcow2", "feature-unknown-bit-named.qcow2")
    img.set("incompatible_features", img.get("incompatible_features") | (1 << 9))
    entry = struct.pack(">BB46s", 0, 9, b"a feature from the future")
    set_extension(img, EXT_FEATURE_TABLE, entry)
    s.keep("feature-unknown-bit-named.qcow2", img)
    img = s.variant("good-v3.qcow2", "feature-data-file.qcow2")
    img.set("incompatible_features", img.get("incompatible_features") | (1 << 2))
    set_extension(img, EXT_DATA_FILE, b"base.raw")
    s.keep("feature-data-file.qcow2", img)
    s.header("feature-data-file.qcow2", "feature-data-file-raw.qcow2", autoclear_features=2)
    s.header("good-backing-raw.qcow2", "feature-data-file-no-name-with-backing.qcow2",
             incompatible_features=lambda img: img.get("incompatible_features") | (1 << 2))
    img = s.variant("good-v3.qcow2", "feature-data-file-name-without-bit.qcow2")
    set_extension(img, EXT_DATA_FILE, b"base.raw")
    s.keep("feature-data-file-name-without-bit.qcow2", img)
    s.header("good-v3.qcow2", "feature-encrypted-luks.qcow2", crypt_method=2)
    s.header("good-v3.qcow2", "feature-unknown-autoclear.qcow2", autoclear_features=1 << 40)
    img = s.variant("good-extended-l2.qcow2", "feature-extended-l2-alloc-and-zero.qcow2")
    where, value = next(iter(img.l2_entry_offsets()))
    img.write(">Q", where + 8, 0x0000000100000001)
    s.keep("feature-extended-l2-alloc-and-zero.qcow2", img)
    img = s.variant("good-cl4096.qcow2", "feature-extension-duplicated.qcow2")
    set_extension(img, EXT_BACKING_FORMAT, b"raw")
    where, _, length = next(img.extensions())
    size = 8 + (length + 7) // 8 * 8
    img.data[where:where] = img.data[where : where + size]
    if any(img.data[img.cluster_size : img.cluster_size + size]):
        raise RuntimeError("the header extensions do not fit in the first cluster")
    del img.data[img.cluster_size : img.cluster_size + size]
    s.keep("feature-extension-duplicated.qcow2", img)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="the corpus directory (emptied first)")
    parser.add_argument("--with-open", action="store_true", help="also write the seeds of OPEN_FINDINGS")
    args = parser.parse_args()
    if os.path.isdir(args.dir):
        shutil.rmtree(args.dir)
    os.makedirs(args.dir)
    with tempfile.TemporaryDirectory() as scratch:
        s = Seeds(scratch, args.dir, args.with_open)
        for build in (build_good, build_header_fields, build_overflow, build_offsets, build_overlaps,
                      build_tables, build_backing, build_features):
            build(s)
    names = os.listdir(args.dir)
    total = sum(os.path.getsize(os.path.join(args.dir, n)) for n in names)
    print(f"{len(names)} seeds in {args.dir}, {total // KiB} KiB")


if __name__ == "__main__":
    main()
