#include "snapshot_table.hpp"

#include "common/error.hpp"
#include "format.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

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
        Snapshot s;
        s.l1_table_offset = load_be64(fixed);
        s.l1_size = load_be32(fixed + 8);
        const std::uint16_t id_size = load_be16(fixed + 12);
        const std::uint16_t name_size = load_be16(fixed + 14);
        s.info.date_sec = load_be32(fixed + 16);
        s.info.date_nsec = load_be32(fixed + 20);
        s.info.vm_clock_nsec = load_be64(fixed + 24);
        s.info.vm_state_size = load_be32(fixed + 32);
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
