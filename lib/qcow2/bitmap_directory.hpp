// The persistent dirty bitmaps directory: read for info and check, and marked "in use" before our first
// write (we do not update bitmaps, so they become inconsistent but stay intact, as QEMU does while open).
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
    std::uint8_t granularity_bits = 0;
    std::string name;
    std::size_t position = 0; // of the entry within the directory
};

inline constexpr std::uint32_t bitmap_flag_in_use = 1u << 0;
inline constexpr std::uint32_t bitmap_flag_auto = 1u << 1;

/// @brief The directory's entries (none without the bitmaps extension); Corrupt when it breaks a limit.
std::vector<BitmapEntry> read_bitmap_directory(const File& file, const Header& header);

/// @brief The directory with the in-use flag set on every entry, ready to be written back.
std::vector<std::byte> bitmap_directory_in_use(const File& file, const Header& header);

} // namespace vmstor::qcow2
