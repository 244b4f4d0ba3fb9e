// Internal snapshots: create, apply (revert) and delete, as qemu-img snapshot -c/-a/-d do.
// Order: clusters are counted before anything references them, the new snapshot table is written before
// one header write switches to it, and what is no longer referenced is released last. A crash anywhere
// leaks clusters at worst.
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <charconv>
#include <cstring>
#include <ctime>
#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

namespace {

/// @brief The host clusters an L2 entry references (first index, count); count 0 when none.
std::pair<std::uint64_t, std::uint64_t> referenced_clusters(std::uint64_t entry, unsigned cluster_bits) {
    if (entry & oflag_compressed) {
        const unsigned x = 62 - (cluster_bits - 8);
        const std::uint64_t host = entry & ((1ull << x) - 1);
        const std::uint64_t sectors = ((entry & ~oflag_compressed & ~oflag_copied) >> x) + 1;
        const std::uint64_t first = host >> cluster_bits;
        const std::uint64_t last = ((host & ~(sector_size - 1)) + sectors * sector_size - 1) >> cluster_bits;
        return {first, last - first + 1};
    }
    const std::uint64_t host = entry & l2e_offset_mask;
    return {host >> cluster_bits, host != 0 ? 1 : 0};
}

std::uint64_t clusters_for(std::uint64_t bytes, std::uint64_t cluster) {
    return (bytes + cluster - 1) / cluster;
}

std::vector<std::byte> encode_l1(const std::vector<std::uint64_t>& l1, std::uint64_t bytes) {
    std::vector<std::byte> raw(bytes);
    for (std::size_t i = 0; i < l1.size(); ++i)
        store_be<std::uint64_t>(&raw[i * 8], l1[i]);
    return raw;
}

std::vector<std::byte> encode_snapshot_table(const std::vector<Snapshot>& snapshots) {
    std::vector<std::byte> raw;
    for (const auto& s : snapshots) {
        const std::size_t start = raw.size();
        const std::size_t size =
            (snapshot_fixed_size + s.extra_data.size() + s.info.id.size() + s.info.name.size() + 7) / 8 * 8;
        raw.resize(start + size);
        std::byte* p = raw.data() + start;
        store_be<std::uint64_t>(p, s.l1_table_offset);
        store_be<std::uint32_t>(p + 8, s.l1_size);
        store_be<std::uint16_t>(p + 12, static_cast<std::uint16_t>(s.info.id.size()));
        store_be<std::uint16_t>(p + 14, static_cast<std::uint16_t>(s.info.name.size()));
        store_be<std::uint32_t>(p + 16, s.info.date_sec);
        store_be<std::uint32_t>(p + 20, s.info.date_nsec);
        store_be<std::uint64_t>(p + 24, s.info.vm_clock_nsec);
        store_be<std::uint32_t>(p + 32, static_cast<std::uint32_t>(s.info.vm_state_size));
        store_be<std::uint32_t>(p + 36, static_cast<std::uint32_t>(s.extra_data.size()));
        p += snapshot_fixed_size;
        std::copy(s.extra_data.begin(), s.extra_data.end(), p);
        p += s.extra_data.size();
        std::memcpy(p, s.info.id.data(), s.info.id.size());
        std::memcpy(p + s.info.id.size(), s.info.name.data(), s.info.name.size());
    }
    return raw;
}

/// @brief QEMU's choice of id: one more than the largest numeric id.
std::string next_snapshot_id(const std::vector<Snapshot>& snapshots) {
    std::uint64_t largest = 0;
    for (const auto& s : snapshots) {
        std::uint64_t value = 0;
        const char* end = s.info.id.data() + s.info.id.size();
        if (std::from_chars(s.info.id.data(), end, value).ptr == end)
            largest = std::max(largest, value);
    }
    return std::to_string(largest + 1);
}

Qcow2Image& as_qcow2(Image& image, const char* what) {
    auto* qcow2 = dynamic_cast<Qcow2Image*>(&image);
    if (!qcow2)
        throw Error(ErrorCode::NotSupported,
                    fmt::format("'{}': {} needs a qcow2 image (format {} has no internal snapshots)",
                                image.path(), what, format_name(image.format())));
    return *qcow2;
}

} // namespace

std::size_t Qcow2Image::find_snapshot(const std::string& name_or_id) const {
    for (std::size_t i = 0; i < snapshots_.size(); ++i)
        if (snapshots_[i].info.id == name_or_id)
            return i;
    for (std::size_t i = 0; i < snapshots_.size(); ++i)
        if (snapshots_[i].info.name == name_or_id)
            return i;
    throw Error(ErrorCode::NotFound, fmt::format("'{}': snapshot '{}' not found", file_.path(), name_or_id));
}

std::vector<std::uint64_t> Qcow2Image::read_snapshot_l1(const Snapshot& snapshot) const {
    std::vector<std::byte> raw(std::uint64_t{snapshot.l1_size} * 8);
    file_.read_exact(snapshot.l1_table_offset, raw, "snapshot L1 table");
    std::vector<std::uint64_t> l1(snapshot.l1_size);
    for (std::size_t i = 0; i < l1.size(); ++i)
        l1[i] = load_be64(&raw[i * 8]);
    return l1;
}

void Qcow2Image::change_tree_refcounts(const std::vector<std::uint64_t>& l1, std::int64_t delta) {
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t slice_size = l2_cache_->slice_size();
    const std::uint32_t entry_size = header_.l2_entry_size();
    for (std::uint64_t l1_entry : l1) {
        const std::uint64_t l2 = l1_entry & l1e_offset_mask;
        if (l2 == 0)
            continue;
        for (std::uint64_t slice = l2; slice < l2 + cluster; slice += slice_size) {
            for (std::uint64_t i = 0; i < slice_size / entry_size; ++i) {
                const std::uint64_t entry = load_be64(l2_cache_->get(slice) + i * entry_size);
                const auto [first, count] = referenced_clusters(entry, header_.cluster_bits);
                for (std::uint64_t c = first; c < first + count; ++c)
                    change_refcount(c, delta);
            }
        }
        change_refcount(l2 / cluster, delta);
        if (get_refcount(l2 / cluster) == 0)
            l2_cache_->forget(l2, cluster); // it may become a new table or data later
    }
}

void Qcow2Image::refresh_copied_flags() {
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t slice_size = l2_cache_->slice_size();
    const std::uint32_t entry_size = header_.l2_entry_size();
    bool l1_changed = false;
    for (auto& l1_entry : l1_) {
        const std::uint64_t l2 = l1_entry & l1e_offset_mask;
        const bool sole = l2 != 0 && get_refcount(l2 / cluster) == 1;
        const std::uint64_t wanted = sole ? (l1_entry | oflag_copied) : (l1_entry & ~oflag_copied);
        l1_changed = l1_changed || wanted != l1_entry;
        l1_entry = wanted;
        if (l2 == 0)
            continue;
        // A shared table's entries are shared too: there this only clears flags, as QEMU does.
        for (std::uint64_t slice = l2; slice < l2 + cluster; slice += slice_size) {
            for (std::uint64_t i = 0; i < slice_size / entry_size; ++i) {
                std::byte* p = l2_cache_->get(slice) + i * entry_size;
                const std::uint64_t entry = load_be64(p);
                const auto [first, count] = referenced_clusters(entry, header_.cluster_bits);
                const bool own = count == 1 && !(entry & oflag_compressed) && get_refcount(first) == 1;
                const std::uint64_t updated = own ? (entry | oflag_copied) : (entry & ~oflag_copied);
                if (updated == entry)
                    continue;
                p = l2_cache_->get(slice) + i * entry_size; // the refcount lookups may have moved it
                store_be<std::uint64_t>(p, updated);
                l2_cache_->mark_dirty(slice);
            }
        }
    }
    l2_cache_->write_back();
    if (l1_changed)
        write_metadata(Metadata::ActiveL1, header_.l1_table_offset,
                       encode_l1(l1_, std::uint64_t{header_.l1_size} * 8));
}

void Qcow2Image::write_snapshot_table(std::vector<Snapshot> snapshots) {
    const std::uint64_t cluster = header_.cluster_size();
    const std::vector<std::byte> raw = encode_snapshot_table(snapshots);
    if (snapshots.size() > max_snapshots)
        throw Error(ErrorCode::NoSpace,
                    fmt::format("'{}': an image holds at most {} snapshots", file_.path(), max_snapshots));
    if (raw.size() > max_snapshot_table_bytes)
        throw Error(ErrorCode::NoSpace,
                    fmt::format("'{}': the snapshot table would exceed 64 MiB", file_.path()));
    std::uint64_t offset = 0;
    if (!raw.empty()) {
        offset = allocate_clusters(clusters_for(raw.size(), cluster));
        refcount_cache_->write_back();
        ordered_sync();
        write_metadata(Metadata::SnapshotTable, offset, raw);
        ordered_sync();
    }
    // One header write switches to the new table.
    std::byte fields[12];
    store_be<std::uint32_t>(fields, static_cast<std::uint32_t>(snapshots.size()));
    store_be<std::uint64_t>(fields + 4, offset);
    write_metadata(Metadata::Header, field::nb_snapshots, fields);
    // Written, if not yet synced: from here on the new table is the one to keep (callers undo only
    // while the old one is).
    const std::uint64_t old_offset = header_.snapshots_offset;
    const std::uint64_t old_clusters = clusters_for(snapshot_table_bytes_, cluster);
    header_.nb_snapshots = static_cast<std::uint32_t>(snapshots.size());
    header_.snapshots_offset = offset;
    snapshots_ = std::move(snapshots);
    snapshot_table_bytes_ = raw.size();
    ordered_sync();
    if (old_offset != 0 && old_clusters != 0)
        free_clusters(old_offset, old_clusters);
    refcount_cache_->write_back();
}

void Qcow2Image::forget_freed_state() {
    // Freed clusters may be reused: drop what remembers their old contents.
    decompressed_entry_ = 0;
    decompressed_.clear();
    compressed_tail_ = 0;
    metadata_preallocation_.reset();
}

void Qcow2Image::create_snapshot(const std::string& name) {
    check_data_access();
    begin_write();
    if (name.empty() || name.size() > 0xffff)
        throw Error(ErrorCode::InvalidArgument, "A snapshot name must have 1 to 65535 bytes");
    for (const auto& s : snapshots_)
        if (s.info.name == name)
            throw Error(ErrorCode::AlreadyExists,
                        fmt::format("'{}': a snapshot named '{}' already exists", file_.path(), name));
    if (header_.refcount_bits() == 1)
        throw Error(
            ErrorCode::NoSpace,
            fmt::format("'{}': with refcount_bits=1 no cluster can be shared by a snapshot", file_.path()));
    if (snapshots_.size() >= max_snapshots)
        throw Error(ErrorCode::NoSpace,
                    fmt::format("'{}': an image holds at most {} snapshots", file_.path(), max_snapshots));
    flush();
    const std::uint64_t cluster = header_.cluster_size();

    // The snapshot's L1 table: a copy of the active one, its clusters counted once more.
    std::vector<std::uint64_t> l1 = l1_;
    for (auto& e : l1)
        e &= ~oflag_copied;
    const std::uint64_t l1_bytes = std::uint64_t{header_.l1_size} * 8;
    const std::uint64_t l1_offset = l1_bytes != 0 ? allocate_clusters(clusters_for(l1_bytes, cluster)) : 0;
    const std::size_t old_count = snapshots_.size();
    change_tree_refcounts(l1_, +1);
    try {
        write_new_snapshot(name, l1, l1_offset);
    } catch (...) {
        // A failed write (a full disk): until the header shows the new table, take the references
        // back, so that the image is left as it was but for leaked clusters; after it, finish.
        try {
            if (snapshots_.size() == old_count) {
                change_tree_refcounts(l1_, -1);
                if (l1_offset != 0)
                    free_clusters(l1_offset, clusters_for(l1_bytes, cluster));
            }
            settle_copied_flags();
        } catch (...) {
            // The first error is the one to report; what is on disk is what a crash there leaves.
        }
        throw;
    }
}

void Qcow2Image::settle_copied_flags() {
    refcount_cache_->write_back();
    ordered_sync();
    refresh_copied_flags();
    flush();
}

void Qcow2Image::write_new_snapshot(const std::string& name, const std::vector<std::uint64_t>& l1,
                                    std::uint64_t l1_offset) {
    const std::uint64_t l1_bytes = std::uint64_t{header_.l1_size} * 8;
    refcount_cache_->write_back();
    ordered_sync();
    if (l1_bytes != 0)
        write_metadata(Metadata::SnapshotL1, l1_offset, encode_l1(l1, l1_bytes));
    refresh_copied_flags(); // every active cluster is now shared with the snapshot
    ordered_sync();

    Snapshot snapshot;
    snapshot.l1_table_offset = l1_offset;
    snapshot.l1_size = header_.l1_size;
    snapshot.info.id = next_snapshot_id(snapshots_);
    snapshot.info.name = name;
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    snapshot.info.date_sec = static_cast<std::uint32_t>(now.tv_sec);
    snapshot.info.date_nsec = static_cast<std::uint32_t>(now.tv_nsec);
    snapshot.info.disk_size = header_.size;
    // Extra data as qemu-img snapshot -c writes it: VM state size, disk size, icount (0 outside a VM).
    snapshot.extra_data.resize(24);
    store_be<std::uint64_t>(&snapshot.extra_data[0], 0);
    store_be<std::uint64_t>(&snapshot.extra_data[8], header_.size);
    store_be<std::uint64_t>(&snapshot.extra_data[16], 0);
    snapshot.info.has_icount = true;
    std::vector<Snapshot> snapshots = snapshots_;
    snapshots.push_back(std::move(snapshot));
    write_snapshot_table(std::move(snapshots));
    flush();
}

void Qcow2Image::apply_snapshot(const std::string& name_or_id) {
    check_data_access();
    if (has_bitmaps()) // QEMU refuses whenever it loaded persistent bitmaps, enabled or not
        throw Error(ErrorCode::Busy, "Device has active dirty bitmaps");
    begin_write();
    const Snapshot snapshot = snapshots_[find_snapshot(name_or_id)];
    flush();
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t new_size = snapshot.info.disk_size.value_or(header_.size);
    const std::uint64_t needed = snapshot_l1_entries(snapshot);

    std::vector<std::uint64_t> l1 = read_snapshot_l1(snapshot);
    for (auto& e : l1)
        e &= ~oflag_copied;
    l1.resize(std::max<std::uint64_t>(l1.size(), needed), 0);
    change_tree_refcounts(l1, +1);
    const std::uint64_t l1_bytes = l1.size() * 8;
    const std::uint64_t l1_clusters = std::max<std::uint64_t>(clusters_for(l1_bytes, cluster), 1);
    const std::uint64_t l1_offset = allocate_clusters(l1_clusters);
    refcount_cache_->write_back();
    ordered_sync();
    write_metadata(Metadata::Data, l1_offset, encode_l1(l1, l1_clusters * cluster));
    ordered_sync();

    // One header write: size, crypt_method (unchanged), l1_size, l1_table_offset.
    std::byte fields[24];
    store_be<std::uint64_t>(fields, new_size);
    store_be<std::uint32_t>(fields + 8, header_.crypt_method);
    store_be<std::uint32_t>(fields + 12, static_cast<std::uint32_t>(l1.size()));
    store_be<std::uint64_t>(fields + 16, l1_offset);
    write_metadata(Metadata::Header, field::size, fields);
    ordered_sync();
    const std::vector<std::uint64_t> old_l1 = std::move(l1_);
    const std::uint64_t old_offset = header_.l1_table_offset;
    const std::uint64_t old_clusters = clusters_for(std::uint64_t{header_.l1_size} * 8, cluster);
    header_.size = new_size;
    header_.l1_size = static_cast<std::uint32_t>(l1.size());
    header_.l1_table_offset = l1_offset;
    l1_ = std::move(l1);

    change_tree_refcounts(old_l1, -1);
    if (old_offset != 0 && old_clusters != 0)
        free_clusters(old_offset, old_clusters);
    refcount_cache_->write_back();
    ordered_sync();
    refresh_copied_flags();
    forget_freed_state();
    flush();
}

std::uint64_t Qcow2Image::snapshot_l1_entries(const Snapshot& snapshot) const {
    const std::uint64_t size = snapshot.info.disk_size.value_or(header_.size);
    const std::uint64_t l2_span = header_.l2_entries() * header_.cluster_size();
    const std::uint64_t needed = size / l2_span + (size % l2_span != 0);
    if (needed * 8 > max_l1_table_bytes)
        throw Error(ErrorCode::Corrupt,
                    fmt::format("'{}': snapshot '{}' has a disk size of {} bytes, too large for an L1 table "
                                "of at most {} bytes",
                                file_.path(), snapshot.info.name, size, max_l1_table_bytes));
    return needed;
}

void Qcow2Image::view_snapshot(const std::string& name_or_id) {
    if (writable_)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("'{}': a snapshot can only be opened read-only", file_.path()));
    const Snapshot& snapshot = snapshots_[find_snapshot(name_or_id)];
    const std::uint64_t size = snapshot.info.disk_size.value_or(header_.size);
    const std::uint64_t needed = snapshot_l1_entries(snapshot);
    std::vector<std::uint64_t> l1 = read_snapshot_l1(snapshot);
    // Guest clusters past the snapshot's L1 table read as unallocated, as in QEMU.
    l1.resize(std::max<std::uint64_t>(l1.size(), needed), 0);
    header_.size = size;
    header_.l1_size = static_cast<std::uint32_t>(l1.size());
    l1_ = std::move(l1);
    metadata_preallocation_.reset();
}

void Qcow2Image::delete_snapshot(const std::string& name_or_id) {
    check_data_access();
    begin_write();
    const std::size_t index = find_snapshot(name_or_id);
    const Snapshot snapshot = snapshots_[index];
    flush();
    std::vector<Snapshot> remaining = snapshots_;
    remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(index));
    write_snapshot_table(std::move(remaining));
    try {
        ordered_sync();
        const std::uint64_t cluster = header_.cluster_size();
        change_tree_refcounts(read_snapshot_l1(snapshot), -1);
        if (snapshot.l1_table_offset != 0)
            free_clusters(snapshot.l1_table_offset,
                          clusters_for(std::uint64_t{snapshot.l1_size} * 8, cluster));
        forget_freed_state();
        // Clusters only the snapshot shared are the active image's alone again.
        settle_copied_flags();
    } catch (...) {
        // The snapshot is gone: a failed write must not leave its clusters' flags stale.
        try {
            settle_copied_flags();
        } catch (...) {
            // The first error is the one to report.
        }
        throw;
    }
}

std::vector<SnapshotInfo> list_snapshots(Image& image) {
    return image.info().snapshots;
}

void create_snapshot(Image& image, const std::string& name) {
    as_qcow2(image, "creating a snapshot").create_snapshot(name);
}

void apply_snapshot(Image& image, const std::string& name_or_id) {
    as_qcow2(image, "applying a snapshot").apply_snapshot(name_or_id);
}

void delete_snapshot(Image& image, const std::string& name_or_id) {
    as_qcow2(image, "deleting a snapshot").delete_snapshot(name_or_id);
}

} // namespace vmstor::qcow2
