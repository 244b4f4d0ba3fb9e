// Persistent dirty bitmaps while the image is open for writing: marked in use before the first write,
// enabled ones record every guest write, and a clean close stores them and clears in-use, as QEMU does.
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace vmstor::qcow2 {

using namespace format;

namespace {

std::uint64_t div_round_up(std::uint64_t value, std::uint64_t by) {
    return value / by + (value % by != 0);
}

// Bits [first, last) of the data cluster whose first bit is `base` are set (or cleared).
void change_bits(std::vector<std::byte>& cluster, std::uint64_t base, std::uint64_t first, std::uint64_t last,
                 bool set) {
    const std::uint64_t end = base + cluster.size() * 8;
    first = std::max(first, base);
    last = std::min(last, end);
    for (std::uint64_t bit = first; bit < last; ++bit) {
        const std::uint64_t i = bit - base;
        const auto mask = static_cast<std::byte>(1u << (i % 8)); // least significant bit first
        cluster[i / 8] = set ? (cluster[i / 8] | mask) : (cluster[i / 8] & ~mask);
    }
}

bool all_zero(const std::vector<std::byte>& data) {
    return std::all_of(data.begin(), data.end(), [](std::byte b) { return b == std::byte{0}; });
}

} // namespace

bool Qcow2Image::has_bitmaps() const {
    return header_.bitmaps && (header_.autoclear_features & autoclear_bitmaps);
}

void Qcow2Image::mark_bitmaps_in_use() {
    if (!has_bitmaps() || bitmap_flags_at_open_)
        return;
    std::vector<std::uint32_t> flags;
    for (const auto& e : read_bitmap_directory(file_, header_))
        flags.push_back(e.flags);
    write_metadata(Metadata::BitmapDirectory, header_.bitmaps->directory_offset,
                   bitmap_directory_in_use(file_, header_));
    ordered_sync();
    bitmap_flags_at_open_ = std::move(flags);
    bitmaps_min_size_ = header_.size;
}

void Qcow2Image::refuse_inconsistent_bitmaps() const {
    if (!has_bitmaps())
        return;
    const std::vector<BitmapEntry> entries = read_bitmap_directory(file_, header_);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const std::uint32_t flags = bitmap_flags_at_open_ && i < bitmap_flags_at_open_->size()
                                        ? (*bitmap_flags_at_open_)[i]
                                        : entries[i].flags;
        if (flags & bitmap_flag_in_use)
            throw Error(ErrorCode::Busy,
                        fmt::format("Bitmap '{}' is inconsistent and cannot be used\nTry "
                                    "block-dirty-bitmap-remove to delete this bitmap from disk",
                                    entries[i].name));
    }
}

void Qcow2Image::note_guest_write(std::uint64_t offset, std::uint64_t length) {
    if (!bitmap_flags_at_open_ || length == 0)
        return;
    std::uint64_t start = offset, end = offset + length;
    auto it = written_.upper_bound(start);
    if (it != written_.begin()) {
        auto before = std::prev(it);
        if (before->second >= start) {
            start = before->first;
            end = std::max(end, before->second);
            it = written_.erase(before);
        }
    }
    while (it != written_.end() && it->first <= end) {
        end = std::max(end, it->second);
        it = written_.erase(it);
    }
    written_.emplace(start, end);
}

void Qcow2Image::note_bitmaps_resize(std::uint64_t new_size) {
    if (!bitmap_flags_at_open_ || new_size >= header_.size)
        return;
    bitmaps_min_size_ = std::min(bitmaps_min_size_, new_size);
    // What was written past the new end no longer exists for the bitmaps.
    for (auto it = written_.lower_bound(new_size); it != written_.end();)
        it = written_.erase(it);
    if (!written_.empty() && written_.rbegin()->second > new_size)
        written_.rbegin()->second = new_size;
}

std::vector<std::uint64_t> Qcow2Image::read_bitmap_table(const BitmapEntry& e) const {
    const std::uint64_t cluster = header_.cluster_size();
    auto corrupt = [&](const std::string& why) {
        return Error(ErrorCode::Corrupt, fmt::format("'{}': bitmap '{}': {}", file_.path(), e.name, why));
    };
    if (e.type != bitmap_type_dirty_tracking)
        throw corrupt(fmt::format("unknown type {}", e.type));
    if (e.granularity_bits < min_bitmap_granularity_bits || e.granularity_bits > max_bitmap_granularity_bits)
        throw corrupt(fmt::format("granularity of 2^{} bytes is out of range", e.granularity_bits));
    if (std::uint64_t{e.table_size} * cluster > max_bitmap_data_bytes)
        throw corrupt(fmt::format("its table lists {} clusters, over the limit", e.table_size));
    const std::uint64_t bytes = std::uint64_t{e.table_size} * 8;
    if (e.table_size != 0 && (e.table_offset % cluster != 0 || e.table_offset > file_.size() ||
                              bytes > file_.size() - e.table_offset))
        throw corrupt(
            fmt::format("its table at {:#x} is misaligned or passes the end of the file", e.table_offset));
    std::vector<std::uint64_t> table(e.table_size);
    if (table.empty())
        return table;
    std::vector<std::byte> raw(bytes);
    file_.read_exact(e.table_offset, raw, "bitmap table");
    for (std::size_t i = 0; i < table.size(); ++i) {
        table[i] = load_be64(&raw[i * 8]);
        const std::uint64_t offset = table[i] & bitmap_table_offset_mask;
        if ((table[i] & ~bitmap_table_offset_mask & ~bitmap_table_all_ones) != 0 ||
            (offset != 0 && ((table[i] & bitmap_table_all_ones) || offset % cluster != 0 ||
                             offset > file_.size() - cluster)))
            throw corrupt(fmt::format("table entry {} ({:#x}) is invalid", i, table[i]));
    }
    return table;
}

void Qcow2Image::store_bitmap(BitmapEntry& e, std::vector<std::pair<std::uint64_t, std::uint64_t>>& release) {
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t bits_per_cluster = cluster * 8;
    const std::uint64_t granule = 1ull << e.granularity_bits;
    const std::vector<std::uint64_t> old_table = read_bitmap_table(e);
    const std::uint64_t bits = div_round_up(header_.size, granule);
    const std::uint64_t table_size = div_round_up(bits, bits_per_cluster);
    if (table_size * cluster > max_bitmap_data_bytes)
        throw Error(ErrorCode::NotSupported, fmt::format("'{}': bitmap '{}' would need more than {} bytes",
                                                         file_.path(), e.name, max_bitmap_data_bytes));
    // Bits from here on were cut off by a shrink (and stay clear even if the image grew again).
    const std::uint64_t cleared_from = div_round_up(bitmaps_min_size_, granule);
    const bool records = (e.flags & bitmap_flag_auto) != 0;

    // The data clusters that change: those a recorded write touches, and those a shrink cut into.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> changed; // [first, last] cluster indices
    if (records)
        for (const auto& [start, end] : written_)
            changed.emplace_back((start / granule) / bits_per_cluster,
                                 ((end - 1) / granule) / bits_per_cluster);
    if (cleared_from < std::uint64_t{old_table.size()} * bits_per_cluster)
        changed.emplace_back(cleared_from / bits_per_cluster, old_table.size() - 1);
    if (changed.empty() && table_size == old_table.size())
        return; // unchanged: the old table stays
    std::sort(changed.begin(), changed.end());

    std::vector<std::uint64_t> table(table_size, 0);
    std::copy_n(old_table.begin(), std::min(old_table.size(), table.size()), table.begin());
    std::vector<std::byte> data(cluster);
    std::uint64_t next = 0; // clusters before this one were done
    for (const auto& [first_changed, last_changed] : changed) {
        for (std::uint64_t c = std::max(first_changed, next); c <= last_changed && c < table_size; ++c) {
            const std::uint64_t old_entry = c < old_table.size() ? old_table[c] : 0;
            const std::uint64_t old_offset = old_entry & bitmap_table_offset_mask;
            if (old_offset != 0)
                file_.read_exact(old_offset, data, "bitmap data");
            else
                std::fill(data.begin(), data.end(),
                          (old_entry & bitmap_table_all_ones) ? std::byte{0xff} : std::byte{0});
            const std::uint64_t base = c * bits_per_cluster;
            change_bits(data, base, cleared_from, UINT64_MAX, false);
            if (records) {
                const std::uint64_t guest_start = base * granule;
                auto it = written_.upper_bound(guest_start);
                if (it != written_.begin())
                    --it;
                for (; it != written_.end() && it->first / granule < base + bits_per_cluster; ++it)
                    change_bits(data, base, it->first / granule, (it->second - 1) / granule + 1, true);
            }
            change_bits(data, base, bits, UINT64_MAX, false); // past the end of the disk
            table[c] = 0;
            if (!all_zero(data)) {
                table[c] = allocate_clusters(1);
                write_metadata(Metadata::Data, table[c], data);
            }
            if (old_offset != 0)
                release.emplace_back(old_offset, 1);
        }
        next = std::max(next, last_changed + 1);
    }
    for (std::size_t c = table_size; c < old_table.size(); ++c)
        if (const std::uint64_t offset = old_table[c] & bitmap_table_offset_mask; offset != 0)
            release.emplace_back(offset, 1);

    if (!old_table.empty())
        release.emplace_back(e.table_offset, div_round_up(old_table.size() * 8, cluster));
    e.table_offset = 0;
    e.table_size = static_cast<std::uint32_t>(table_size);
    if (table_size != 0) {
        const std::uint64_t table_clusters = div_round_up(table_size * 8, cluster);
        std::vector<std::byte> raw(table_clusters * cluster);
        for (std::size_t i = 0; i < table.size(); ++i)
            store_be<std::uint64_t>(&raw[i * 8], table[i]);
        e.table_offset = allocate_clusters(table_clusters);
        write_metadata(Metadata::Data, e.table_offset, raw);
    }
}

void Qcow2Image::store_bitmaps() {
    if (!bitmap_flags_at_open_)
        return;
    const std::uint64_t cluster = header_.cluster_size();
    std::vector<BitmapEntry> entries = read_bitmap_directory(file_, header_);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> release; // (host offset, clusters)
    for (std::size_t i = 0; i < entries.size(); ++i) {
        // One that was in use before we opened the image is inconsistent: QEMU leaves it as it is.
        if (i < bitmap_flags_at_open_->size() && ((*bitmap_flags_at_open_)[i] & bitmap_flag_in_use))
            continue;
        store_bitmap(entries[i], release);
        entries[i].flags &= ~bitmap_flag_in_use;
    }
    // New tables and data on disk, and their refcounts, before a directory names them.
    std::vector<std::byte> directory = encode_bitmap_directory(entries);
    const std::uint64_t directory_bytes = directory.size();
    const std::uint64_t directory_clusters = div_round_up(directory_bytes, cluster);
    const std::uint64_t directory_offset = allocate_clusters(directory_clusters);
    refcount_cache_->write_back();
    ordered_sync();
    directory.resize(directory_clusters * cluster, std::byte{0});
    write_metadata(Metadata::Data, directory_offset, directory);
    ordered_sync();
    // The header switches to the new directory in one write; until then the old one (in use) holds.
    release.emplace_back(header_.bitmaps->directory_offset,
                         div_round_up(header_.bitmaps->directory_size, cluster));
    header_.bitmaps->directory_offset = directory_offset;
    header_.bitmaps->directory_size = directory_bytes;
    write_header();
    ordered_sync();
    bitmap_flags_at_open_.reset();
    written_.clear();
    for (const auto& [offset, count] : release)
        free_clusters(offset, count);
    refcount_cache_->write_back();
    file_.sync();
}

} // namespace vmstor::qcow2
