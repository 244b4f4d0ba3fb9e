// The internal snapshot table: read and validated (creating and applying snapshots is elsewhere).
#pragma once

#include "file.hpp"
#include "header.hpp"
#include "image.hpp"

#include <string>
#include <vector>

namespace vmstor::qcow2 {

struct Snapshot {
    std::uint64_t l1_table_offset = 0;
    std::uint32_t l1_size = 0;
    SnapshotInfo info;
    std::vector<std::byte> extra_data;
};

/// @brief Reads the snapshot table; throws Corrupt when an entry or its L1 table breaks a limit.
/// `table_bytes` receives the table's total size (for overlap checks and check).
std::vector<Snapshot> read_snapshot_table(const File& file, const Header& header, std::uint64_t& table_bytes);

/// @brief The snapshot table as check reads it: damage that qemu-img check tolerates is reported instead
/// of refused, within the same limits (at most 65536 entries, 1024 bytes of extra data each, 64 MiB).
struct CheckedSnapshotTable {
    std::vector<Snapshot> snapshots;
    std::uint64_t table_bytes = 0; // on disk, including extra data that was cut
    std::uint32_t discarded = 0;   // overhanging entries dropped (repair only)
    std::uint32_t extra_cut = 0;   // entries whose extra data was cut to 1024 bytes (repair only)
    std::vector<std::string> messages;
    std::string failure; // non-empty: the table could not be read, as qemu-img says why ("File too large")
};

/// @brief Reads the table named by the header's count and offset as qemu-img check does; with `repair`
/// (-r all), overhanging entries are dropped and too much extra data is cut instead of failing.
/// Parts past the end of the file read as zeroes.
CheckedSnapshotTable read_snapshot_table_for_check(const File& file, const Header& header, bool repair);

} // namespace vmstor::qcow2
