#include "bitmap_directory.hpp"

#include "common/error.hpp"
#include "format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace vmstor::qcow2 {

using namespace format;

namespace {

constexpr std::size_t entry_fixed_size = 24;

std::vector<std::byte> read_raw(const File& file, const Header& h) {
    if (h.bitmaps->directory_size > file.size() ||
        h.bitmaps->directory_offset > file.size() - h.bitmaps->directory_size)
        throw Error(ErrorCode::Corrupt,
                    fmt::format("'{}': the bitmap directory passes the end of the file", file.path()));
    std::vector<std::byte> raw(h.bitmaps->directory_size);
    file.read_exact(h.bitmaps->directory_offset, raw, "bitmap directory");
    return raw;
}

template <typename Visit>
void for_each_entry(const File& file, const Header& h, std::vector<std::byte>& raw, Visit visit) {
    std::size_t pos = 0;
    for (std::uint32_t n = 0; n < h.bitmaps->nb_bitmaps; ++n) {
        if (pos + entry_fixed_size > raw.size())
            throw Error(ErrorCode::Corrupt,
                        fmt::format("'{}': the bitmap directory is shorter than its {} entries", file.path(),
                                    h.bitmaps->nb_bitmaps));
        const std::uint16_t name_size = load_be16(&raw[pos + 18]);
        const std::uint32_t extra_size = load_be32(&raw[pos + 20]);
        const std::size_t size = (entry_fixed_size + extra_size + name_size + 7) / 8 * 8;
        if (name_size == 0 || name_size > 1023 || extra_size > raw.size() || pos + size > raw.size())
            throw Error(ErrorCode::Corrupt,
                        fmt::format("'{}': bitmap directory entry {} is malformed", file.path(), n));
        visit(pos, extra_size, name_size);
        pos += size;
    }
}

} // namespace

std::vector<BitmapEntry> read_bitmap_directory(const File& file, const Header& h) {
    std::vector<BitmapEntry> entries;
    if (!h.bitmaps)
        return entries;
    std::vector<std::byte> raw = read_raw(file, h);
    for_each_entry(file, h, raw, [&](std::size_t pos, std::uint32_t extra_size, std::uint16_t name_size) {
        BitmapEntry e;
        e.position = pos;
        e.table_offset = load_be64(&raw[pos]);
        e.table_size = load_be32(&raw[pos + 8]);
        e.flags = load_be32(&raw[pos + 12]);
        e.type = static_cast<std::uint8_t>(raw[pos + 16]);
        e.granularity_bits = static_cast<std::uint8_t>(raw[pos + 17]);
        e.extra_data.assign(&raw[pos + entry_fixed_size], &raw[pos + entry_fixed_size + extra_size]);
        e.name.assign(reinterpret_cast<const char*>(&raw[pos + entry_fixed_size + extra_size]), name_size);
        entries.push_back(std::move(e));
    });
    return entries;
}

std::vector<std::byte> encode_bitmap_directory(const std::vector<BitmapEntry>& entries) {
    std::vector<std::byte> raw;
    for (const auto& e : entries) {
        const std::size_t pos = raw.size();
        raw.resize(pos + (entry_fixed_size + e.extra_data.size() + e.name.size() + 7) / 8 * 8, std::byte{0});
        store_be<std::uint64_t>(&raw[pos], e.table_offset);
        store_be<std::uint32_t>(&raw[pos + 8], e.table_size);
        store_be<std::uint32_t>(&raw[pos + 12], e.flags);
        raw[pos + 16] = std::byte{e.type};
        raw[pos + 17] = std::byte{e.granularity_bits};
        store_be<std::uint16_t>(&raw[pos + 18], static_cast<std::uint16_t>(e.name.size()));
        store_be<std::uint32_t>(&raw[pos + 20], static_cast<std::uint32_t>(e.extra_data.size()));
        std::copy(e.extra_data.begin(), e.extra_data.end(), &raw[pos + entry_fixed_size]);
        std::memcpy(&raw[pos + entry_fixed_size + e.extra_data.size()], e.name.data(), e.name.size());
    }
    return raw;
}

std::vector<std::byte> bitmap_directory_in_use(const File& file, const Header& h) {
    std::vector<std::byte> raw = read_raw(file, h);
    for_each_entry(file, h, raw, [&](std::size_t pos, std::uint32_t, std::uint16_t) {
        store_be<std::uint32_t>(&raw[pos + 12], load_be32(&raw[pos + 12]) | bitmap_flag_in_use);
    });
    return raw;
}

} // namespace vmstor::qcow2
