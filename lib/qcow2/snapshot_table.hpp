// The internal snapshot table: read and validated (creating and applying snapshots is elsewhere).
#pragma once

#include "file.hpp"
#include "header.hpp"
#include "image.hpp"

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

} // namespace vmstor::qcow2
