// The persistent dirty bitmaps directory: read for info and check, marked "in use" before our first write
// (as QEMU does while it has the image open for writing), encoded again when the bitmaps are stored.
#pragma once

#include "file.hpp"
#include "header.hpp"

#include <string>
#include <vector>

namespace vmstor::qcow2 {

struct BitmapEntry {
    std::uint64_t table_offset = 0;
    std::uint32_t table_size = 0;
    std::uint32_t flags = 0;
    std::uint8_t type = 0;
    std::uint8_t granularity_bits = 0;
    std::vector<std::byte> extra_data;
    std::string name;
    std::size_t position = 0; // of the entry within the directory
};

inline constexpr std::uint32_t bitmap_flag_in_use = 1u << 0;
inline constexpr std::uint32_t bitmap_flag_auto = 1u << 1;
inline constexpr std::uint8_t bitmap_type_dirty_tracking = 1;
inline constexpr unsigned min_bitmap_granularity_bits = 9;           // as QEMU
inline constexpr unsigned max_bitmap_granularity_bits = 31;          // as QEMU
inline constexpr std::uint64_t max_bitmap_data_bytes = 512ull << 20; // QEMU's limit of a bitmap's clusters
// A bitmap table entry: the data cluster's offset, or 0 (all zeroes) or 1 (all ones) without one.
inline constexpr std::uint64_t bitmap_table_offset_mask = 0x00fffffffffffe00ull;
inline constexpr std::uint64_t bitmap_table_all_ones = 1;

/// @brief The directory's entries (none without the bitmaps extension); Corrupt when it breaks a limit.
std::vector<BitmapEntry> read_bitmap_directory(const File& file, const Header& header);

/// @brief The directory as the file holds it: the entries in order, each padded to 8 bytes.
std::vector<std::byte> encode_bitmap_directory(const std::vector<BitmapEntry>& entries);

/// @brief The directory with the in-use flag set on every entry, ready to be written back.
std::vector<std::byte> bitmap_directory_in_use(const File& file, const Header& header);

} // namespace vmstor::qcow2
