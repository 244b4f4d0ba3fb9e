// Guest cluster -> host mapping through the L1 table and L2 slices; L2 table allocation and copy.
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

std::uint64_t Qcow2Image::l2_slice_offset(std::uint64_t l2_table, std::uint64_t l2_index) const {
    const std::uint64_t byte = l2_index * header_.l2_entry_size();
    return l2_table + byte / l2_cache_->slice_size() * l2_cache_->slice_size();
}

L2Entry Qcow2Image::get_l2_entry(std::uint64_t guest_cluster) {
    const std::uint64_t entries = header_.l2_entries();
    const std::uint64_t l1_index = guest_cluster / entries;
    const std::uint64_t l2_index = guest_cluster % entries;
    if (l1_index >= l1_.size())
        return {};
    const std::uint64_t l2_table = l1_[l1_index] & l1e_offset_mask;
    if (l2_table == 0)
        return {};
    if (l2_table % header_.cluster_size() != 0)
        throw Error(ErrorCode::Corrupt,
                    fmt::format("'{}': L1 entry {} points at an L2 table at {:#x} that is "
                                "not cluster-aligned",
                                file_.path(), l1_index, l2_table));
    const std::uint64_t slice = l2_slice_offset(l2_table, l2_index);
    const std::byte* p = l2_cache_->get(slice) + (l2_index * header_.l2_entry_size() - (slice - l2_table));
    L2Entry e;
    e.entry = load_be64(p);
    if (header_.extended_l2())
        e.bitmap = load_be64(p + 8);
    return e;
}

void Qcow2Image::set_l2_entry(std::uint64_t guest_cluster, const L2Entry& e) {
    const std::uint64_t entries = header_.l2_entries();
    const std::uint64_t l1_index = guest_cluster / entries;
    const std::uint64_t l2_index = guest_cluster % entries;
    const std::uint64_t l2_table = l1_.at(l1_index) & l1e_offset_mask;
    const std::uint64_t slice = l2_slice_offset(l2_table, l2_index);
    std::byte* p = l2_cache_->get(slice) + (l2_index * header_.l2_entry_size() - (slice - l2_table));
    store_be<std::uint64_t>(p, e.entry);
    if (header_.extended_l2())
        store_be<std::uint64_t>(p + 8, e.bitmap);
    l2_cache_->mark_dirty(slice);
}

ClusterKind Qcow2Image::kind_of(const L2Entry& e, unsigned subcluster, std::uint64_t guest_cluster) const {
    auto corrupt = [&](const char* why) {
        return Error(ErrorCode::Corrupt,
                     fmt::format("'{}': the L2 entry of guest offset {:#x} ({:#x}) {}", file_.path(),
                                 guest_cluster << header_.cluster_bits, e.entry, why));
    };
    // A subcluster bitmap beside a compressed entry is ignored, as QEMU reads it (check reports it).
    if (e.entry & oflag_compressed)
        return ClusterKind::Compressed;
    const std::uint64_t host = e.entry & l2e_offset_mask;
    if (host % header_.cluster_size() != 0)
        throw corrupt("has a host offset that is not cluster-aligned");
    if (header_.extended_l2()) {
        const bool allocated = (e.bitmap >> subcluster) & 1;
        const bool zero = (e.bitmap >> (32 + subcluster)) & 1;
        if (allocated && zero)
            throw corrupt("marks a subcluster both allocated and zero");
        if (allocated && host == 0)
            throw corrupt("marks a subcluster allocated without a host offset");
        if (allocated)
            return ClusterKind::Normal;
        if (zero)
            return host ? ClusterKind::ZeroAllocated : ClusterKind::ZeroPlain;
        return ClusterKind::Unallocated;
    }
    if (e.entry & oflag_zero) {
        if (header_.version < 3)
            throw corrupt("has the zero flag, which version 2 does not have");
        return host ? ClusterKind::ZeroAllocated : ClusterKind::ZeroPlain;
    }
    return host ? ClusterKind::Normal : ClusterKind::Unallocated;
}

void Qcow2Image::write_l1_entry(std::size_t index) {
    std::byte raw[8];
    store_be<std::uint64_t>(raw, l1_[index]);
    write_metadata(Metadata::ActiveL1, header_.l1_table_offset + index * 8, raw);
}

void Qcow2Image::prepare_l2_table(std::uint64_t guest_cluster) {
    const std::uint64_t cluster = header_.cluster_size();
    const std::size_t l1_index = static_cast<std::size_t>(guest_cluster / header_.l2_entries());
    if (l1_index >= l1_.size())
        throw Error(ErrorCode::InvalidArgument, fmt::format("'{}': guest cluster {} is beyond the L1 table",
                                                            file_.path(), guest_cluster));
    const std::uint64_t old_table = l1_[l1_index] & l1e_offset_mask;
    if (old_table != 0 && (l1_[l1_index] & oflag_copied))
        return;
    if (old_table != 0 && get_refcount(old_table / cluster) == 1) {
        l1_[l1_index] |= oflag_copied; // only the flag was stale
        write_l1_entry(l1_index);
        return;
    }
    const std::uint64_t new_table = allocate_clusters(1);
    std::vector<std::byte> table(cluster, std::byte{0});
    if (old_table != 0) {
        // Shared with a snapshot: copy it (its entries keep their refcounts, now referenced twice).
        l2_cache_->forget(old_table, cluster);
        file_.read_exact(old_table, table, "L2 table");
    }
    // The new table and its refcount must be on disk before the L1 entry points at it.
    refcount_cache_->write_back();
    write_metadata(Metadata::ActiveL2, new_table, table);
    ordered_sync();
    l1_[l1_index] = new_table | oflag_copied;
    write_l1_entry(l1_index);
    if (old_table != 0) {
        // The shared table loses a reference only once the L1 entry no longer points at it on disk;
        // else a crash could leave it referenced twice with refcount 1.
        ordered_sync();
        change_refcount(old_table / cluster, -1);
    }
}

} // namespace vmstor::qcow2
