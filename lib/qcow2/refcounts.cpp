// Refcounts of any width (1..64 bits), cluster allocation, refcount block and table growth.
// Order: a cluster is counted (and the count is on disk) before anything references it.
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

std::uint64_t Qcow2Image::get_refcount(std::uint64_t cluster_index) {
    const std::uint64_t per_block = header_.refcount_block_entries();
    const std::uint64_t table_index = cluster_index / per_block;
    if (table_index >= refcount_table_.size())
        return 0;
    const std::uint64_t block = refcount_table_[table_index] & refcount_table_offset_mask;
    if (block == 0)
        return 0;
    if (block % header_.cluster_size() != 0 || block >= max_host_offset)
        throw Error(ErrorCode::Corrupt,
                    fmt::format("'{}': refcount table entry {} ({:#x}) is not cluster-aligned or is beyond "
                                "the 2^56 host limit",
                                file_.path(), table_index, block));
    return load_refcount_entry(refcount_cache_->get(block), cluster_index % per_block,
                               header_.refcount_order);
}

bool Qcow2Image::refcount_block_present(std::uint64_t cluster_index) const {
    const std::uint64_t table_index = cluster_index / header_.refcount_block_entries();
    return table_index < refcount_table_.size() &&
           (refcount_table_[table_index] & refcount_table_offset_mask) != 0;
}

void Qcow2Image::set_refcount(std::uint64_t cluster_index, std::uint64_t value) {
    const unsigned bits = header_.refcount_bits();
    if (bits < 64 && value >> bits)
        throw Error(ErrorCode::NoSpace, fmt::format("'{}': refcount of cluster {} would overflow its {} bits",
                                                    file_.path(), cluster_index, bits));
    ensure_refcount_block(cluster_index);
    const std::uint64_t per_block = header_.refcount_block_entries();
    const std::uint64_t block = refcount_table_[cluster_index / per_block] & refcount_table_offset_mask;
    store_refcount_entry(refcount_cache_->get(block), cluster_index % per_block, header_.refcount_order,
                         value);
    refcount_cache_->mark_dirty(block);
    if (value == 0 && cluster_index < free_cluster_hint_)
        free_cluster_hint_ = cluster_index;
}

void Qcow2Image::change_refcount(std::uint64_t cluster_index, std::int64_t delta) {
    const std::uint64_t current = get_refcount(cluster_index);
    if (delta < 0 && current < static_cast<std::uint64_t>(-delta))
        mark_corrupt(fmt::format("refcount of cluster {} would drop below zero", cluster_index));
    set_refcount(cluster_index, current + static_cast<std::uint64_t>(delta));
}

void Qcow2Image::note_refcount_table() {
    refcount_table_in_use_ = refcount_table_.size();
    while (refcount_table_in_use_ > 0 &&
           (refcount_table_[refcount_table_in_use_ - 1] & refcount_table_offset_mask) == 0)
        --refcount_table_in_use_;
}

void Qcow2Image::write_refcount_table_entry(std::size_t index) {
    std::byte raw[8];
    store_be<std::uint64_t>(raw, refcount_table_[index]);
    write_metadata(Metadata::RefcountTable, header_.refcount_table_offset + index * 8, raw);
}

std::uint64_t Qcow2Image::find_free_run(std::uint64_t count, std::uint64_t start) {
    const std::uint64_t per_block = header_.refcount_block_entries();
    std::uint64_t run_start = std::max<std::uint64_t>(start, 1);
    std::uint64_t c = run_start;
    while (c - run_start < count) {
        if (!refcount_block_present(c)) {
            // No block: every cluster it would describe is free.
            c = (c / per_block + 1) * per_block;
            continue;
        }
        if (get_refcount(c) != 0)
            run_start = c + 1;
        ++c;
    }
    return run_start;
}

void Qcow2Image::ensure_refcount_block(std::uint64_t cluster_index) {
    const std::uint64_t per_block = header_.refcount_block_entries();
    const std::uint64_t cluster = header_.cluster_size();
    while (true) {
        const std::uint64_t table_index = cluster_index / per_block;
        if (table_index >= refcount_table_.size()) {
            grow_refcount_table(cluster_index);
            continue;
        }
        if (refcount_table_[table_index] != 0)
            return;
        const std::uint64_t candidate = find_free_run(1, free_cluster_hint_);
        if (candidate / per_block == table_index) {
            // The new block describes itself.
            std::byte* block = refcount_cache_->fresh(candidate * cluster);
            store_refcount_entry(block, candidate % per_block, header_.refcount_order, 1);
        } else {
            ensure_refcount_block(candidate);
            if (get_refcount(candidate) != 0)
                continue; // the block for `candidate` took that very cluster; pick again
            set_refcount(candidate, 1);
            refcount_cache_->fresh(candidate * cluster);
        }
        refcount_cache_->write_back();
        ordered_sync();
        refcount_table_[table_index] = candidate * cluster;
        refcount_table_in_use_ = std::max<std::size_t>(refcount_table_in_use_, table_index + 1);
        write_refcount_table_entry(static_cast<std::size_t>(table_index));
        return;
    }
}

void Qcow2Image::grow_refcount_table(std::uint64_t needed_cluster_index) {
    const std::uint64_t per_block = header_.refcount_block_entries();
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t old_entries = refcount_table_.size();
    const std::uint64_t file_clusters = (file_.size() + cluster - 1) / cluster;
    // New blocks and the new table go after everything else, beyond what the old table covers.
    const std::uint64_t start = std::max({file_clusters, needed_cluster_index + 1, old_entries * per_block});
    std::uint64_t blocks = 1, table_clusters = 1, covered_entries = 0;
    for (int round = 0; round < 16; ++round) {
        const std::uint64_t end = start + blocks + table_clusters;
        covered_entries = (end + per_block - 1) / per_block;
        const std::uint64_t table_entries = std::max(covered_entries, old_entries + old_entries / 2 + 1);
        const std::uint64_t new_blocks = covered_entries - old_entries;
        const std::uint64_t new_table_clusters = (table_entries * 8 + cluster - 1) / cluster;
        if (new_blocks == blocks && new_table_clusters == table_clusters)
            break;
        blocks = std::max<std::uint64_t>(new_blocks, 1);
        table_clusters = new_table_clusters;
    }
    if (table_clusters * cluster > max_refcount_table_bytes)
        throw Error(ErrorCode::NoSpace, fmt::format("'{}': the refcount table would exceed {} bytes",
                                                    file_.path(), max_refcount_table_bytes));
    const std::uint64_t end = start + blocks + table_clusters;
    refcount_cache_->write_back();
    for (std::uint64_t k = 0; k < blocks; ++k) {
        const std::uint64_t first = (old_entries + k) * per_block;
        std::vector<std::byte> block(cluster);
        for (std::uint64_t c = std::max(first, start); c < std::min(first + per_block, end); ++c)
            store_refcount_entry(block.data(), c - first, header_.refcount_order, 1);
        write_metadata(Metadata::Data, (start + k) * cluster, block);
    }
    std::vector<std::uint64_t> table = refcount_table_;
    table.resize(table_clusters * cluster / 8, 0);
    for (std::uint64_t k = 0; k < blocks; ++k)
        table[old_entries + k] = (start + k) * cluster;
    std::vector<std::byte> raw(table_clusters * cluster);
    for (std::size_t i = 0; i < table.size(); ++i)
        store_be<std::uint64_t>(&raw[i * 8], table[i]);
    const std::uint64_t table_offset = (start + blocks) * cluster;
    write_metadata(Metadata::Data, table_offset, raw);
    ordered_sync();

    const std::uint64_t old_offset = header_.refcount_table_offset;
    const std::uint64_t old_clusters = header_.refcount_table_clusters;
    std::byte fields[12];
    store_be<std::uint64_t>(fields, table_offset);
    store_be<std::uint32_t>(fields + 8, static_cast<std::uint32_t>(table_clusters));
    write_metadata(Metadata::Header, field::refcount_table_offset, fields);
    ordered_sync();
    header_.refcount_table_offset = table_offset;
    header_.refcount_table_clusters = static_cast<std::uint32_t>(table_clusters);
    refcount_table_ = std::move(table);
    note_refcount_table();
    for (std::uint64_t i = 0; i < old_clusters; ++i)
        change_refcount(old_offset / cluster + i, -1);
}

std::uint64_t Qcow2Image::allocate_clusters(std::uint64_t count) {
    const std::uint64_t per_block = header_.refcount_block_entries();
    while (true) {
        const std::uint64_t first = find_free_run(count, free_cluster_hint_);
        // The last cluster first: growing the table places new metadata after the whole run.
        ensure_refcount_block(first + count - 1);
        for (std::uint64_t c = first; c < first + count; c = (c / per_block + 1) * per_block)
            ensure_refcount_block(c);
        bool still_free = true;
        for (std::uint64_t c = first; c < first + count && still_free; ++c)
            still_free = get_refcount(c) == 0;
        if (!still_free)
            continue; // a new refcount block landed inside the run
        for (std::uint64_t c = first; c < first + count; ++c)
            set_refcount(c, 1);
        free_cluster_hint_ = first + count;
        return first * header_.cluster_size();
    }
}

std::uint64_t Qcow2Image::allocate_bytes(std::uint64_t bytes) {
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t used = compressed_tail_ % cluster;
    if (compressed_tail_ != 0 && used != 0) {
        const std::uint64_t offset = compressed_tail_;
        const std::uint64_t tail_cluster = offset / cluster;
        const std::uint64_t more = (used + bytes - 1) / cluster; // clusters needed past the tail one
        // As QEMU packs them: on into the next clusters when they are the next free ones.
        if (more == 0 || find_free_run(more, free_cluster_hint_) == tail_cluster + 1) {
            const std::uint64_t first = more == 0 ? tail_cluster + 1 : allocate_clusters(more) / cluster;
            if (first == tail_cluster + 1) {
                change_refcount(tail_cluster, 1);
                compressed_tail_ += bytes;
                return offset;
            }
            free_clusters(first * cluster, more); // a new refcount block took the next cluster
        }
    }
    const std::uint64_t offset = allocate_clusters((bytes + cluster - 1) / cluster);
    compressed_tail_ = offset + bytes;
    return offset;
}

void Qcow2Image::free_clusters(std::uint64_t host_offset, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i)
        change_refcount(host_offset / header_.cluster_size() + i, -1);
}

} // namespace vmstor::qcow2
