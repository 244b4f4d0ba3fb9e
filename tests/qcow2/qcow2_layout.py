"""Reads and patches qcow2 on-disk structures (docs/interop/qcow2.txt), for building damaged images.

Only what the damage builders need: the header fields by their spec offsets, the L1/L2 tables and
the refcount table and blocks. Everything is big-endian on disk.
"""
import struct

MAGIC = b"QFI\xfb"

# name -> (byte offset, struct format) as in the spec's header table.
HEADER_FIELDS = {
    "magic": (0, ">4s"),
    "version": (4, ">I"),
    "backing_file_offset": (8, ">Q"),
    "backing_file_size": (16, ">I"),
    "cluster_bits": (20, ">I"),
    "size": (24, ">Q"),
    "crypt_method": (32, ">I"),
    "l1_size": (36, ">I"),
    "l1_table_offset": (40, ">Q"),
    "refcount_table_offset": (48, ">Q"),
    "refcount_table_clusters": (56, ">I"),
    "nb_snapshots": (60, ">I"),
    "snapshots_offset": (64, ">Q"),
    "incompatible_features": (72, ">Q"),
    "compatible_features": (80, ">Q"),
    "autoclear_features": (88, ">Q"),
    "refcount_order": (96, ">I"),
    "header_length": (100, ">I"),
    "compression_type": (104, ">B"),
}

EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857

L1_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2_OFFSET_MASK = 0x00FFFFFFFFFFFE00
FLAG_COPIED = 1 << 63
FLAG_COMPRESSED = 1 << 62


class Image:
    """A qcow2 file opened for reading and in-place patching."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        if self.data[:4] != MAGIC:
            raise ValueError(f"{path}: not a qcow2 image")
        self.version = self.get("version")
        self.cluster_bits = self.get("cluster_bits")
        self.cluster_size = 1 << self.cluster_bits
        self.refcount_bits = 1 << (self.get("refcount_order") if self.version >= 3 else 4)
        incompatible = self.get("incompatible_features") if self.version >= 3 else 0
        self.extended_l2 = bool(incompatible & (1 << 4))
        self.l2_entry_size = 16 if self.extended_l2 else 8

    def save(self):
        with open(self.path, "wb") as f:
            f.write(self.data)

    # --- raw access -------------------------------------------------------------------------
    def read(self, fmt, offset):
        return struct.unpack_from(fmt, self.data, offset)[0]

    def write(self, fmt, offset, value):
        end = offset + struct.calcsize(fmt)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        struct.pack_into(fmt, self.data, offset, value)

    def get(self, field):
        offset, fmt = HEADER_FIELDS[field]
        return self.read(fmt, offset)

    def set(self, field, value):
        offset, fmt = HEADER_FIELDS[field]
        self.write(fmt, offset, value)

    def append_cluster(self, fill=0):
        """Grows the file by one cluster (aligned first) and returns the new cluster's offset."""
        aligned = -(-len(self.data) // self.cluster_size) * self.cluster_size
        self.data.extend(bytes(aligned - len(self.data)))
        offset = len(self.data)
        self.data.extend(bytes([fill]) * self.cluster_size)
        return offset

    # --- header extensions ------------------------------------------------------------------
    def extensions(self):
        """Yields (offset of the extension's type field, type, length)."""
        offset = 72 if self.version == 2 else self.get("header_length")
        while offset + 8 <= self.cluster_size:
            ext_type, length = struct.unpack_from(">II", self.data, offset)
            if ext_type == EXT_END:
                return
            yield offset, ext_type, length
            offset += 8 + (length + 7) // 8 * 8

    # --- L1 / L2 ----------------------------------------------------------------------------
    def l1_entries(self):
        base = self.get("l1_table_offset")
        return [self.read(">Q", base + 8 * i) for i in range(self.get("l1_size"))]

    def l2_entry_offsets(self):
        """Yields (file offset of an L2 entry, its value) for every non-zero entry of the active L1."""
        per_table = self.cluster_size // self.l2_entry_size
        for l1 in self.l1_entries():
            table = l1 & L1_OFFSET_MASK
            if not table:
                continue
            for i in range(per_table):
                where = table + i * self.l2_entry_size
                value = self.read(">Q", where)
                if value:
                    yield where, value

    def data_clusters(self):
        """(entry offset, host offset) of every standard allocated data cluster."""
        out = []
        for where, value in self.l2_entry_offsets():
            host = value & L2_OFFSET_MASK
            if not value & FLAG_COMPRESSED and host:
                out.append((where, host))
        return out

    def compressed_entries(self):
        return [(w, v) for w, v in self.l2_entry_offsets() if v & FLAG_COMPRESSED]

    # --- refcounts --------------------------------------------------------------------------
    def _refcount_location(self, host_offset):
        entries_per_block = self.cluster_size * 8 // self.refcount_bits
        cluster = host_offset // self.cluster_size
        table_index, block_index = divmod(cluster, entries_per_block)
        table = self.get("refcount_table_offset")
        block = self.read(">Q", table + 8 * table_index) & ~0x1FF
        if not block:
            raise ValueError(f"no refcount block covers offset {host_offset:#x}")
        bit = block_index * self.refcount_bits
        return block, bit

    def refcount(self, host_offset):
        block, bit = self._refcount_location(host_offset)
        if self.refcount_bits >= 8:
            width = self.refcount_bits // 8
            raw = self.data[block + bit // 8 : block + bit // 8 + width]
            return int.from_bytes(raw, "big")
        byte = self.data[block + bit // 8]
        return (byte >> (bit % 8)) & ((1 << self.refcount_bits) - 1)

    def set_refcount(self, host_offset, value):
        block, bit = self._refcount_location(host_offset)
        if self.refcount_bits >= 8:
            width = self.refcount_bits // 8
            self.data[block + bit // 8 : block + bit // 8 + width] = value.to_bytes(width, "big")
            return
        mask = ((1 << self.refcount_bits) - 1) << (bit % 8)
        byte = self.data[block + bit // 8]
        self.data[block + bit // 8] = (byte & ~mask) | ((value << (bit % 8)) & mask)

    # --- snapshot table ---------------------------------------------------------------------
    def snapshot_entry_offsets(self):
        """File offsets of the snapshot table's entries (variable length, padded to 8 bytes)."""
        offsets, where = [], self.get("snapshots_offset")
        for _ in range(self.get("nb_snapshots")):
            offsets.append(where)
            id_len, name_len = struct.unpack_from(">HH", self.data, where + 12)
            extra = self.read(">I", where + 36)
            where += (40 + extra + id_len + name_len + 7) // 8 * 8
        return offsets
