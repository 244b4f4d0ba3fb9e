// The qcow2 header and its extensions: parsed and validated before anything else is read,
// and encoded back (unknown extensions and fields preserved) when it changes.
#pragma once

#include "file.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmstor::qcow2 {

struct FeatureName {
    std::uint8_t type = 0; // 0 incompatible, 1 compatible, 2 autoclear
    std::uint8_t bit = 0;
    std::string name;
};

struct UnknownExtension {
    std::uint32_t type = 0;
    std::vector<std::byte> data;
};

struct BitmapsExtension {
    std::uint32_t nb_bitmaps = 0;
    std::uint64_t directory_size = 0;
    std::uint64_t directory_offset = 0;
};

struct Header {
    std::uint32_t version = 3;
    std::uint32_t cluster_bits = 16;
    std::uint64_t size = 0;
    std::uint32_t crypt_method = 0;
    std::uint32_t l1_size = 0;
    std::uint64_t l1_table_offset = 0;
    std::uint64_t refcount_table_offset = 0;
    std::uint32_t refcount_table_clusters = 0;
    std::uint32_t nb_snapshots = 0;
    std::uint64_t snapshots_offset = 0;
    std::uint64_t incompatible_features = 0;
    std::uint64_t compatible_features = 0;
    std::uint64_t autoclear_features = 0;
    std::uint32_t refcount_order = 4;
    std::uint32_t header_length = 112;
    std::uint8_t compression_type = 0;
    std::vector<std::byte> extra_header_fields; // bytes after compression_type up to header_length

    std::uint64_t backing_file_offset = 0;
    std::string backing_file;
    std::optional<std::string> backing_format;
    std::optional<std::string> data_file;
    std::vector<FeatureName> feature_names;
    std::optional<BitmapsExtension> bitmaps;
    bool has_crypto_extension = false;
    std::vector<UnknownExtension> unknown_extensions;

    std::uint64_t cluster_size() const { return 1ull << cluster_bits; }
    std::uint32_t refcount_bits() const { return 1u << refcount_order; }
    bool extended_l2() const;
    /// @brief Bytes per L2 entry: 8, or 16 with extended L2 entries.
    std::uint32_t l2_entry_size() const { return extended_l2() ? 16 : 8; }
    std::uint64_t l2_entries() const { return cluster_size() / l2_entry_size(); }
    std::uint64_t refcount_block_entries() const { return cluster_size() * 8 / refcount_bits(); }
};

/// @brief Reads and validates the header of an open file: every field, limit and extension is
/// checked before anything is allocated for it. Throws Corrupt (which field, why) or NotSupported.
/// `check_snapshot_table` false: the snapshot count and offset are left to check, which reports them.
Header read_header(const File& file, bool check_snapshot_table = true);

/// @brief The encoded first-cluster header area (header, extensions, backing file name).
/// Throws InvalidArgument if it does not fit in one cluster.
std::vector<std::byte> encode_header(const Header& header);

/// @brief The name of a feature bit for messages: from the image's own table, else ours.
std::string feature_name(const Header& header, std::uint8_t type, std::uint8_t bit);

} // namespace vmstor::qcow2
