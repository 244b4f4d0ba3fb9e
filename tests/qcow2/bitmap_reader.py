"""Reads the persistent dirty bitmaps of a qcow2 file as the spec lays them out (docs/interop/qcow2.txt):
the bitmaps header extension, the directory, each bitmap's table and data clusters. The tests compare
what vmstor-img leaves with what qemu-img leaves, bit for bit."""
import struct

BITMAPS_EXTENSION = 0x23852875
FLAG_IN_USE = 1
FLAG_AUTO = 2
OFFSET_MASK = 0x00FFFFFFFFFFFE00


def _header(f):
    f.seek(0)
    raw = f.read(112)
    version, = struct.unpack_from(">I", raw, 4)
    cluster_bits, = struct.unpack_from(">I", raw, 20)
    size, = struct.unpack_from(">Q", raw, 24)
    autoclear, header_length = 0, 72
    if version >= 3:
        autoclear, = struct.unpack_from(">Q", raw, 88)
        header_length, = struct.unpack_from(">I", raw, 100)
    return version, 1 << cluster_bits, size, autoclear, header_length


def _extension(f, offset, wanted):
    while True:
        f.seek(offset)
        kind, length = struct.unpack(">II", f.read(8))
        if kind == 0:
            return None
        if kind == wanted:
            return f.read(length)
        offset += 8 + (length + 7) // 8 * 8


def _set_bits(data, base):
    """Ranges [first, end) of set bits of one data cluster (least significant bit first)."""
    ranges = []
    for index, byte in enumerate(data):
        if not byte:
            continue
        for bit in range(8):
            if byte >> bit & 1:
                n = base + index * 8 + bit
                if ranges and ranges[-1][1] == n:
                    ranges[-1][1] = n + 1
                else:
                    ranges.append([n, n + 1])
    return ranges


def read_bitmaps(path):
    """{name: {"flags": {...}, "granularity": int, "dirty": [(first_bit, end_bit), ...]}}; {} when the
    image has no bitmaps QEMU would load. The dirty ranges of an in-use bitmap are left out (None)."""
    with open(path, "rb") as f:
        version, cluster, size, autoclear, header_length = _header(f)
        if version < 3 or not autoclear & 1:
            return {}
        ext = _extension(f, header_length, BITMAPS_EXTENSION)
        if ext is None:
            return {}
        count, _, directory_size, directory_offset = struct.unpack(">IIQQ", ext)
        f.seek(directory_offset)
        directory = f.read(directory_size)
        out, pos = {}, 0
        for _ in range(count):
            table_offset, table_size, flags, kind, granularity_bits, name_size, extra = struct.unpack_from(
                ">QIIBBHI", directory, pos)
            name = directory[pos + 24 + extra:pos + 24 + extra + name_size].decode()
            pos += (24 + extra + name_size + 7) // 8 * 8
            entry = {"flags": {f for f, bit in (("in-use", FLAG_IN_USE), ("auto", FLAG_AUTO)) if flags & bit},
                     "granularity": 1 << granularity_bits, "dirty": None}
            if not flags & FLAG_IN_USE:
                f.seek(table_offset)
                table = struct.unpack(f">{table_size}Q", f.read(table_size * 8)) if table_size else ()
                dirty = []
                for index, value in enumerate(table):
                    base = index * cluster * 8
                    if value & OFFSET_MASK:
                        f.seek(value & OFFSET_MASK)
                        ranges = _set_bits(f.read(cluster), base)
                    elif value & 1:
                        ranges = [[base, base + cluster * 8]]
                    else:
                        ranges = []
                    for r in ranges:
                        if dirty and dirty[-1][1] == r[0]:
                            dirty[-1][1] = r[1]
                        else:
                            dirty.append(r)
                bits = -(-size // entry["granularity"])
                entry["dirty"] = [(a, min(b, bits)) for a, b in dirty if a < bits]
                entry["bits_past_end"] = any(b > bits for _, b in dirty)
                entry["table_size"] = table_size
            out[name] = entry
        return out
