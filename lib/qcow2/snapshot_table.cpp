#include "snapshot_table.hpp"

#include "common/error.hpp"
#include "format.hpp"

#include <algorithm>
#include <cstdint>
#include <fmt/format.h>
#include <span>

namespace vmstor::qcow2 {

using namespace format;

namespace {

// The fixed part of a table entry; the sizes of what follows are read by the caller.
Snapshot decode_fixed_part(const std::byte* fixed) {
    Snapshot s;
    s.l1_table_offset = load_be64(fixed);
    s.l1_size = load_be32(fixed + 8);
    s.info.date_sec = load_be32(fixed + 16);
    s.info.date_nsec = load_be32(fixed + 20);
    s.info.vm_clock_nsec = load_be64(fixed + 24);
    s.info.vm_state_size = load_be32(fixed + 32);
    return s;
}

} // namespace

std::vector<Snapshot> read_snapshot_table(const File& file, const Header& h, std::uint64_t& table_bytes) {
    std::vector<Snapshot> snapshots;
    table_bytes = 0;
    if (h.nb_snapshots == 0)
        return snapshots;
    auto corrupt = [&](std::uint32_t index, const std::string& why) {
        return Error(ErrorCode::Corrupt, fmt::format("'{}' is not a valid qcow2 image: snapshot {}: {}",
                                                     file.path(), index, why));
    };
    const std::uint64_t file_size = file.size();
    std::uint64_t pos = h.snapshots_offset;
    snapshots.reserve(std::min<std::uint32_t>(h.nb_snapshots, 1024));
    for (std::uint32_t i = 0; i < h.nb_snapshots; ++i) {
        if (pos - h.snapshots_offset + snapshot_fixed_size > max_snapshot_table_bytes)
            throw corrupt(i, "the snapshot table is larger than 64 MiB");
        std::byte fixed[snapshot_fixed_size];
        file.read_exact(pos, fixed, "snapshot table entry");
        Snapshot s = decode_fixed_part(fixed);
        const std::uint16_t id_size = load_be16(fixed + 12);
        const std::uint16_t name_size = load_be16(fixed + 14);
        const std::uint32_t extra_size = load_be32(fixed + 36);
        if (extra_size > max_snapshot_extra_data)
            throw corrupt(
                i, fmt::format("extra data has {} bytes (at most {})", extra_size, max_snapshot_extra_data));
        if (h.version >= 3 && extra_size < snapshot_v3_min_extra)
            throw corrupt(i, fmt::format("extra data has {} bytes, version 3 needs at least 16", extra_size));
        const std::uint64_t entry_size = (snapshot_fixed_size + extra_size + id_size + name_size + 7) / 8 * 8;
        if (pos - h.snapshots_offset + entry_size > max_snapshot_table_bytes)
            throw corrupt(i, "the snapshot table is larger than 64 MiB");
        std::vector<std::byte> rest(extra_size + id_size + name_size);
        file.read_exact(pos + snapshot_fixed_size, rest, "snapshot table entry");
        s.extra_data.assign(rest.begin(), rest.begin() + extra_size);
        if (extra_size >= 8)
            s.info.vm_state_size = load_be64(rest.data());
        if (extra_size >= 16)
            s.info.disk_size = load_be64(rest.data() + 8);
        if (extra_size >= 24) {
            s.info.icount = load_be64(rest.data() + 16);
            s.info.has_icount = true;
        }
        s.info.id.assign(reinterpret_cast<const char*>(rest.data()) + extra_size, id_size);
        s.info.name.assign(reinterpret_cast<const char*>(rest.data()) + extra_size + id_size, name_size);

        if (s.l1_table_offset % h.cluster_size() != 0)
            throw corrupt(i, fmt::format("L1 table offset {:#x} is not cluster-aligned", s.l1_table_offset));
        if (std::uint64_t{s.l1_size} * 8 > max_l1_table_bytes)
            throw corrupt(
                i, fmt::format("L1 table has {} entries (at most {} bytes)", s.l1_size, max_l1_table_bytes));
        if (s.l1_size > 0 &&
            (s.l1_table_offset == 0 || s.l1_table_offset + std::uint64_t{s.l1_size} * 8 > file_size))
            throw corrupt(i, "its L1 table lies outside the file");
        snapshots.push_back(std::move(s));
        pos += entry_size;
    }
    table_bytes = pos - h.snapshots_offset;
    return snapshots;
}

} // namespace vmstor::qcow2

namespace vmstor::qcow2 {

namespace {

// Reads `out` at `offset`; what lies past the end of the file (or past any offset a file can have)
// reads as zeroes, as QEMU's reads of the snapshot table do.
void read_padded(const File& file, std::uint64_t file_size, std::uint64_t offset, std::span<std::byte> out) {
    if (offset >= file_size) {
        std::fill(out.begin(), out.end(), std::byte{0});
        return;
    }
    file.read_or_zero(offset, out);
}

} // namespace

CheckedSnapshotTable read_snapshot_table_for_check(const File& file, const Header& h, bool repair) {
    CheckedSnapshotTable t;
    std::uint32_t count = h.nb_snapshots;
    if (count > max_snapshots && repair) {
        t.messages.push_back(fmt::format("Discarding {} overhanging snapshots", count - max_snapshots));
        t.discarded += count - max_snapshots;
        count = max_snapshots;
    }
    if (count > max_snapshots) {
        t.messages.push_back("ERROR snapshot table too large");
        t.messages.push_back(
            fmt::format("You can force-remove all {} overhanging snapshots with qemu-img check -r all",
                        count - max_snapshots));
        t.failure = "File too large";
        return t;
    }
    const std::uint64_t int64_max = std::uint64_t{INT64_MAX};
    if (h.snapshots_offset % h.cluster_size() != 0 ||
        int64_max - std::uint64_t{count} * snapshot_fixed_size < h.snapshots_offset) {
        t.messages.push_back("ERROR snapshot table offset invalid");
        t.failure = "Invalid argument";
        return t;
    }
    const std::uint64_t file_size = file.size();
    const std::uint64_t start = h.snapshots_offset;
    std::uint64_t pos = start;
    std::uint64_t table_length = 0; // with cut extra data counted as cut
    auto fail = [&](const std::string& why, const std::string& hint) {
        t.messages.push_back("ERROR failed to read the snapshot table: " + why);
        t.messages.push_back(hint);
        t.failure = "File too large";
        t.snapshots.clear();
        return t;
    };
    t.snapshots.reserve(std::min<std::uint32_t>(count, 1024));
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::uint64_t entry_start = pos;
        table_length = (table_length + 7) / 8 * 8;
        pos = (pos + 7) / 8 * 8;
        std::byte fixed[snapshot_fixed_size];
        read_padded(file, file_size, pos, fixed);
        pos += snapshot_fixed_size;
        Snapshot s = decode_fixed_part(fixed);
        const std::uint16_t id_size = load_be16(fixed + 12);
        const std::uint16_t name_size = load_be16(fixed + 14);
        const std::uint32_t extra_size = load_be32(fixed + 36);
        std::uint32_t kept_extra = extra_size;
        if (extra_size > max_snapshot_extra_data) {
            if (!repair)
                return fail(fmt::format("Too much extra metadata in snapshot table entry {}", i),
                            "You can force-remove this extra metadata with qemu-img check -r all");
            t.messages.push_back(fmt::format("Discarding too much extra metadata in snapshot table entry {} "
                                             "({} > {})",
                                             i, extra_size, max_snapshot_extra_data));
            ++t.extra_cut;
            kept_extra = max_snapshot_extra_data;
        }
        s.extra_data.resize(kept_extra);
        read_padded(file, file_size, pos, s.extra_data);
        pos += extra_size;
        if (kept_extra >= 8)
            s.info.vm_state_size = load_be64(s.extra_data.data());
        s.info.disk_size = kept_extra >= 16 ? load_be64(s.extra_data.data() + 8) : h.size;
        if (kept_extra >= 24) {
            s.info.icount = load_be64(s.extra_data.data() + 16);
            s.info.has_icount = true;
        }
        std::vector<std::byte> names(std::size_t{id_size} + name_size);
        read_padded(file, file_size, pos, names);
        pos += names.size();
        s.info.id.assign(reinterpret_cast<const char*>(names.data()), id_size);
        s.info.name.assign(reinterpret_cast<const char*>(names.data()) + id_size, name_size);
        table_length += snapshot_fixed_size + kept_extra + names.size();
        if (table_length > max_snapshot_table_bytes || pos - start > std::uint64_t{INT32_MAX}) {
            if (!repair)
                return fail("Snapshot table is too big",
                            fmt::format("You can force-remove all {} overhanging snapshots with qemu-img "
                                        "check -r all",
                                        count - i));
            t.messages.push_back(
                fmt::format("Discarding {} overhanging snapshots (snapshot table is too big)", count - i));
            t.discarded += count - i;
            pos = entry_start;
            break;
        }
        t.snapshots.push_back(std::move(s));
    }
    t.table_bytes = pos - start;
    return t;
}

} // namespace vmstor::qcow2
