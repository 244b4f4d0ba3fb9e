// Changing the virtual size: growing the L1 table when needed, dropping clusters past a new end.
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"
#include "raw_image.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

void Qcow2Image::resize(std::uint64_t new_size, bool allow_shrink) {
    grow_or_shrink(new_size, allow_shrink, Preallocation::Off);
}

void Qcow2Image::grow(std::uint64_t new_size, Preallocation mode) {
    if (new_size < header_.size)
        throw Error(ErrorCode::InvalidArgument, "Preallocation can only be used for growing images");
    grow_or_shrink(new_size, false, mode);
}

// A failure at any point leaves the old virtual size or the new one, and at worst leaked clusters: a
// grown image gets its bigger L1 table and its preallocated clusters before the header's size shows
// them; a shrunk one gets its new size first, so that the clusters dropped after it are past the end.
void Qcow2Image::grow_or_shrink(std::uint64_t new_size, bool allow_shrink, Preallocation mode) {
    check_data_access();
    if (new_size % 512 != 0)
        throw Error(ErrorCode::InvalidArgument, "The new size must be a multiple of 512");
    if (new_size > max_virtual_size)
        throw Error(ErrorCode::InvalidArgument, fmt::format("{} is larger than the qcow2 maximum", new_size));
    if (new_size < header_.size && !allow_shrink)
        throw Error(ErrorCode::InvalidArgument, "Use the --shrink option to perform a shrink operation.");
    refuse_inconsistent_bitmaps();
    begin_write();
    note_bitmaps_resize(new_size);
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t l2_span = header_.l2_entries() * cluster;
    const std::uint64_t l1_needed = (new_size + l2_span - 1) / l2_span;

    if (new_size < header_.size) {
        const std::uint64_t old_clusters = (header_.size + cluster - 1) / cluster;
        write_size(new_size);
        // Drop every cluster from the first whole cluster past the new end.
        const std::uint64_t first = (new_size + cluster - 1) / cluster;
        for (std::uint64_t gc = first; gc < old_clusters; ++gc) {
            L2Entry e = get_l2_entry(gc);
            if (e.entry == 0 && e.bitmap == 0)
                continue;
            prepare_l2_table(gc);
            e = get_l2_entry(gc);
            set_l2_entry(gc, {});
            release_host_cluster(e, gc);
        }
        flush();
        apply_pending_releases();
        // L2 tables wholly past the end are released too.
        for (std::size_t i = static_cast<std::size_t>(l1_needed); i < l1_.size(); ++i) {
            const std::uint64_t l2 = l1_[i] & l1e_offset_mask;
            if (l2 == 0)
                continue;
            l2_cache_->forget(l2, cluster);
            l1_[i] = 0;
            write_l1_entry(i);
            ordered_sync();
            change_refcount(l2 / cluster, -1);
        }
        flush();
        return;
    }
    if (l1_needed > header_.l1_size)
        grow_l1_table(l1_needed);
    if (mode != Preallocation::Off) {
        preallocate(mode, (header_.size + cluster - 1) / cluster, (new_size + cluster - 1) / cluster);
        ordered_sync();
    }
    write_size(new_size);
    flush();
}

void Qcow2Image::write_size(std::uint64_t new_size) {
    // What the header is about to show (new clusters, a new L1 table) must be on disk first.
    flush();
    ordered_sync();
    std::byte size_field[8];
    store_be<std::uint64_t>(size_field, new_size);
    write_metadata(Metadata::Header, field::size, size_field);
    header_.size = new_size;
    metadata_preallocation_.reset();
}

void Qcow2Image::grow_l1_table(std::uint64_t l1_needed) {
    const std::uint64_t cluster = header_.cluster_size();
    if (l1_needed * 8 > max_l1_table_bytes)
        throw Error(
            ErrorCode::InvalidArgument,
            fmt::format("'{}': {} L1 entries make an L1 table larger than 32 MiB", file_.path(), l1_needed));
    const std::uint64_t new_clusters = (l1_needed * 8 + cluster - 1) / cluster;
    const std::uint64_t new_offset = allocate_clusters(new_clusters);
    std::vector<std::uint64_t> l1 = l1_;
    l1.resize(l1_needed, 0);
    std::vector<std::byte> raw(new_clusters * cluster);
    for (std::size_t i = 0; i < l1.size(); ++i)
        store_be<std::uint64_t>(&raw[i * 8], l1[i]);
    refcount_cache_->write_back();
    write_metadata(Metadata::Data, new_offset, raw);
    ordered_sync();
    std::byte fields[12];
    store_be<std::uint32_t>(fields, static_cast<std::uint32_t>(l1_needed));
    store_be<std::uint64_t>(fields + 4, new_offset);
    write_metadata(Metadata::Header, field::l1_size, fields);
    ordered_sync();
    const std::uint64_t old_offset = header_.l1_table_offset;
    const std::uint64_t old_clusters = (std::uint64_t{header_.l1_size} * 8 + cluster - 1) / cluster;
    header_.l1_size = static_cast<std::uint32_t>(l1_needed);
    header_.l1_table_offset = new_offset;
    l1_ = std::move(l1);
    if (old_offset != 0)
        for (std::uint64_t i = 0; i < old_clusters; ++i)
            change_refcount(old_offset / cluster + i, -1);
}

void grow_image(Image& image, std::uint64_t new_size, Preallocation mode) {
    const std::uint64_t old_size = image.virtual_size();
    if (mode == Preallocation::Off) {
        image.resize(new_size, false);
        return;
    }
    if (new_size < old_size)
        throw Error(ErrorCode::InvalidArgument, "Preallocation can only be used for growing images");
    if (image.format() == ImageFormat::Raw) {
        auto& raw = static_cast<RawImage&>(image);
        if (mode == Preallocation::Metadata)
            throw Error(ErrorCode::NotSupported, "Unsupported preallocation mode: metadata");
        try {
            raw.preallocate(mode, old_size, new_size);
        } catch (...) {
            // The old size back: what was allocated past it is no part of the image.
            raw.resize(old_size, true);
            throw;
        }
        raw.resize(new_size, false);
        return;
    }
    static_cast<Qcow2Image&>(image).grow(new_size, mode);
}

} // namespace vmstor::qcow2
