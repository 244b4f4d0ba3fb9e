// check and repair: count every reference from the metadata, compare with the refcounts on disk,
// verify the COPIED flags, and repair leaks (-r leaks) and refcount errors (-r all) as qemu-img does.
#include "check.hpp"

#include "bitmap_directory.hpp"
#include "common/error.hpp"
#include "format.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <unordered_set>

namespace vmstor::qcow2 {

using namespace format;

void Qcow2Checker::count(std::uint64_t offset, std::uint64_t bytes) {
    if (bytes == 0)
        return;
    const unsigned bits = h_.cluster_bits;
    // Like QEMU: the last cluster may be partly past the end of the file, anything more is a corruption.
    const std::uint64_t limit = file_bytes_ + h_.cluster_size();
    if (offset >= limit || bytes >= limit - offset) { // offset + bytes >= limit, without wrapping
        report(fmt::format("ERROR: counting reference for region exceeding the end of the file by one "
                           "cluster or more: offset {:#x} size {:#x}",
                           offset, bytes));
        ++result_.corruptions;
        return;
    }
    const std::uint64_t first = offset >> bits;
    const std::uint64_t last = (offset + bytes - 1) >> bits;
    if (last >= refs_.size())
        refs_.resize(last + 1, 0);
    for (std::uint64_t c = first; c <= last; ++c) {
        if (refs_[c] < 0xfffe) {
            ++refs_[c];
        } else if (refs_[c] == 0xfffe) {
            refs_[c] = 0xffff;
            big_refs_[c] = 0xffff;
        } else {
            ++big_refs_[c];
        }
    }
}

std::uint64_t Qcow2Checker::disk_refcount(std::uint64_t cluster) {
    // A refcount block that is misaligned or outside the file reads as zeroes (it was reported already).
    // The last block is remembered: lookups are mostly sequential, and only this function uses the cache
    // until a repair starts (which forgets it).
    const std::uint64_t per_block = h_.refcount_block_entries();
    const std::uint64_t index = cluster / per_block;
    if (index != memo_index_) {
        memo_index_ = index;
        memo_block_ = nullptr;
        if (index < img_.refcount_table_.size()) {
            const std::uint64_t block = img_.refcount_table_[index] & refcount_table_offset_mask;
            if (block != 0 && block % h_.cluster_size() == 0 && block < file_bytes_ &&
                h_.cluster_size() <= file_bytes_ - block) // block + cluster could wrap
                memo_block_ = img_.refcount_cache_->get(block);
        }
    }
    return memo_block_ ? load_refcount_entry(memo_block_, cluster % per_block, h_.refcount_order) : 0;
}

std::uint64_t Qcow2Checker::counted(std::uint64_t cluster) const {
    if (cluster >= refs_.size())
        return 0;
    return refs_[cluster] == 0xffff ? big_refs_.at(cluster) : refs_[cluster];
}

void Qcow2Checker::walk_l2(std::uint64_t l2_offset, bool active) {
    const std::uint64_t cluster = h_.cluster_size();
    std::vector<std::byte> table(cluster);
    img_.l2_cache_->forget(l2_offset, cluster); // write back cached changes before reading the table
    img_.file_.read_exact(l2_offset, table, "L2 table");
    const std::uint32_t entry_size = h_.l2_entry_size();
    const unsigned x = 62 - (h_.cluster_bits - 8);
    const bool external_data = (h_.incompatible_features & incompat_data_file) != 0;
    std::uint64_t next_contiguous = 0; // fragmentation is counted within one L2 table, as qemu-img does
    for (std::uint64_t i = 0; i < h_.l2_entries(); ++i) {
        const std::uint64_t entry = load_be64(&table[i * entry_size]);
        const std::uint64_t bitmap = h_.extended_l2() ? load_be64(&table[i * entry_size + 8]) : 0;
        if (entry & oflag_compressed) {
            const std::uint64_t host = entry & ((1ull << x) - 1);
            if (entry & oflag_copied) { // reported, then the entry is read without it (as QEMU does)
                report(fmt::format(
                    "ERROR: coffset=0x{:x}: copied flag must never be set for compressed clusters", host));
                ++result_.corruptions;
            }
            if (h_.extended_l2() && bitmap != 0) { // QEMU then leaves the cluster uncounted
                report(fmt::format("ERROR compressed cluster {} with non-zero subcluster allocation bitmap, "
                                   "entry=0x{:x}",
                                   i, entry));
                ++result_.corruptions;
                continue;
            }
            const std::uint64_t sectors = ((entry & ~oflag_compressed & ~oflag_copied) >> x) + 1;
            count(host, sectors * sector_size - (host & (sector_size - 1)));
            if (active) {
                ++result_.allocated_clusters;
                ++result_.compressed_clusters;
                ++result_.fragmented_clusters; // compressed clusters are fragmented by nature
            }
            continue;
        }
        const std::uint64_t host = entry & l2e_offset_mask;
        // Bit 0 is the zero flag only in version 3 without extended L2 entries.
        const std::uint64_t reserved =
            l2e_std_reserved_mask | (h_.version < 3 || h_.extended_l2() ? oflag_zero : 0);
        if (entry & reserved) {
            report(fmt::format("ERROR found {}l2 entry with reserved bits set: {:x}",
                               host ? "" : "unallocated ", entry));
            ++result_.corruptions;
        }
        // Offset 0 is a real cluster in an external data file when the entry says so (COPIED), as in QEMU.
        if (host == 0 && !(external_data && (entry & oflag_copied)))
            continue;
        if (host % cluster != 0) {
            report(fmt::format("ERROR offset={:x}: Data cluster is not properly aligned; L2 entry corrupted.",
                               host));
            ++result_.corruptions; // and counted all the same, as QEMU does
        }
        if (active) {
            ++result_.allocated_clusters;
            if (next_contiguous != 0 && host != next_contiguous)
                ++result_.fragmented_clusters;
            next_contiguous = host + cluster;
            const bool copied = (entry & oflag_copied) != 0;
            // Clusters in an external data file have no refcount; QEMU takes it as 1.
            if ((external_data || disk_refcount(host / cluster) == 1) != copied &&
                (suspect_l2_tables_.empty() || suspect_l2_tables_.back() != l2_offset))
                suspect_l2_tables_.push_back(l2_offset);
        }
        if (!external_data)
            count(host, cluster);
    }
}

void Qcow2Checker::walk_l1(std::uint64_t l1_offset, std::uint32_t l1_size, bool active) {
    count(l1_offset, std::uint64_t{l1_size} * 8);
    if (active) {
        for (std::uint64_t e : img_.l1_)
            walk_l1_entry(e, true);
        return;
    }
    // A snapshot's table is read in slices, and only the part inside the file (past the end it reads as
    // zeroes: nothing to walk), so that a damaged entry's size costs no memory.
    constexpr std::uint64_t slice_entries = 8192;
    const std::uint64_t in_file = l1_offset < file_bytes_ ? (file_bytes_ - l1_offset) / 8 : 0;
    const std::uint64_t entries = std::min<std::uint64_t>(l1_size, in_file);
    std::vector<std::byte> raw;
    for (std::uint64_t first = 0; first < entries; first += slice_entries) {
        raw.resize(std::min(slice_entries, entries - first) * 8);
        img_.file_.read_or_zero(l1_offset + first * 8, raw);
        for (std::size_t i = 0; i < raw.size(); i += 8)
            walk_l1_entry(load_be64(&raw[i]), false);
    }
}

void Qcow2Checker::walk_l1_entry(std::uint64_t e, bool active) {
    const std::uint64_t cluster = h_.cluster_size();
    if (e & l1e_reserved_mask) {
        report(fmt::format("ERROR found L1 entry with reserved bits set: {:x}", e));
        ++result_.corruptions;
    }
    const std::uint64_t l2 = e & l1e_offset_mask;
    if (l2 == 0)
        return;
    if (l2 % cluster != 0) {
        report(fmt::format("ERROR l2_offset={:x}: Table is not cluster aligned; L1 entry corrupted", l2));
        ++result_.corruptions;
    }
    count(l2, cluster);
    if (l2 + cluster > file_bytes_)
        return; // past the end: QEMU reads zeroes there, so no entries
    walk_l2(l2, active);
}

void Qcow2Checker::walk_refcount_table() {
    const std::uint64_t cluster = h_.cluster_size();
    count(h_.refcount_table_offset, std::uint64_t{h_.refcount_table_clusters} * cluster);
    for (std::uint64_t i = 0; i < h_.refcount_table_clusters; ++i)
        old_refcount_clusters_.push_back(h_.refcount_table_offset / cluster + i);
    for (std::size_t i = 0; i < img_.refcount_table_.size(); ++i) {
        if (img_.refcount_table_[i] & refcount_table_reserved_mask) {
            report(fmt::format("ERROR refcount table entry {} has reserved bits set", i));
            ++result_.corruptions;
            needs_rebuild_ = true;
            continue;
        }
        const std::uint64_t block = img_.refcount_table_[i] & refcount_table_offset_mask;
        if (block == 0)
            continue;
        if (block % cluster != 0) {
            report(fmt::format(
                "ERROR refcount block {} is not cluster aligned; refcount table entry corrupted", i));
            ++result_.corruptions;
            needs_rebuild_ = true;
            continue;
        }
        if (block >= file_bytes_) {
            report(fmt::format("ERROR refcount block {} is outside image", i));
            ++result_.corruptions;
            needs_rebuild_ = true;
            continue;
        }
        count(block, cluster);
        old_refcount_clusters_.push_back(block / cluster);
    }
}

void Qcow2Checker::walk_bitmaps() {
    if (!h_.bitmaps || !(h_.autoclear_features & autoclear_bitmaps))
        return; // QEMU ignores an inconsistent bitmaps extension, so its clusters count as leaks
    count(h_.bitmaps->directory_offset, h_.bitmaps->directory_size);
    for (const auto& b : read_bitmap_directory(img_.file_, h_)) {
        if (b.table_offset == 0 || std::uint64_t{b.table_size} * 8 > max_l1_table_bytes)
            continue;
        count(b.table_offset, std::uint64_t{b.table_size} * 8);
        std::vector<std::byte> table(std::uint64_t{b.table_size} * 8);
        img_.file_.read_or_zero(b.table_offset, table);
        for (std::uint32_t i = 0; i < b.table_size; ++i) {
            const std::uint64_t data = load_be64(&table[i * 8]) & l2e_offset_mask;
            if (data != 0)
                count(data, h_.cluster_size());
        }
    }
}

void Qcow2Checker::compare_refcounts() {
    struct Mismatch {
        std::uint64_t cluster, on_disk, references;
    };
    std::vector<Mismatch> mismatches;
    for (std::uint64_t c = 0; c < refs_.size(); ++c) {
        const std::uint64_t on_disk = disk_refcount(c);
        const std::uint64_t references = counted(c);
        if (on_disk > 0 || references > 0)
            highest_cluster_ = c + 1;
        if (on_disk == references)
            continue;
        if (on_disk == 0)
            needs_rebuild_ = true; // a referenced cluster counted free: the refcount structure is broken
        mismatches.push_back({c, on_disk, references});
    }
    if (needs_rebuild_ && repair_ == RepairMode::All) {
        // As QEMU: everything found so far counts as fixed by the rebuild.
        for (const auto& m : mismatches) {
            const bool leak = m.on_disk > m.references;
            report(fmt::format("{} cluster {} refcount={} reference={}", leak ? "Leaked" : "ERROR", m.cluster,
                               m.on_disk, m.references));
            ++(leak ? result_.leaks : result_.corruptions);
        }
        report("Rebuilding refcount structure");
        memo_index_ = UINT64_MAX;
        refcounts_changed_ = true;
        rebuild_refcounts();
        result_.corruptions_fixed += result_.corruptions;
        result_.leaks_fixed += result_.leaks;
        result_.corruptions = result_.leaks = 0;
        return;
    }
    if (needs_rebuild_ && repair_ == RepairMode::Leaks) {
        for (const auto& m : mismatches)
            if (m.on_disk < m.references)
                report(fmt::format("ERROR cluster {} refcount={} reference={}", m.cluster, m.on_disk,
                                   m.references));
        report("ERROR need to rebuild refcount structures");
        ++result_.check_errors;
        result_.failure = "Input/output error"; // reported with the lines above, as qemu-img does
        return;
    }
    // Repairs must not allocate a cluster that is referenced but counted zero on disk: allocate past the end.
    img_.free_cluster_hint_ = std::max<std::uint64_t>(img_.free_cluster_hint_, refs_.size());
    for (const auto& m : mismatches) {
        const bool leak = m.on_disk > m.references;
        const bool fix = leak ? repair_ != RepairMode::None : repair_ == RepairMode::All;
        report(fmt::format("{} cluster {} refcount={} reference={}",
                           fix    ? "Repairing"
                           : leak ? "Leaked"
                                  : "ERROR",
                           m.cluster, m.on_disk, m.references));
        if (fix) {
            memo_index_ = UINT64_MAX; // the cache may change under the remembered block
            refcounts_changed_ = true;
            img_.set_refcount(m.cluster, m.references);
            ++(leak ? result_.leaks_fixed : result_.corruptions_fixed);
        } else {
            ++(leak ? result_.leaks : result_.corruptions);
        }
    }
}

void Qcow2Checker::rebuild_refcounts() {
    // As QEMU 7.2 rebuilds: refcount blocks first-fit in the clusters nobody references (the old refcount
    // structures still count as used, so they are not overwritten), one per range with a used cluster;
    // then the table first-fit, again until it stops growing. The old structures end up free.
    const std::uint64_t cluster = h_.cluster_size();
    const std::uint64_t per_block = h_.refcount_block_entries();
    std::uint64_t nb = std::max<std::uint64_t>(refs_.size(), (file_bytes_ + cluster - 1) / cluster);
    std::vector<bool> used(nb);
    for (std::uint64_t c = 0; c < refs_.size(); ++c)
        used[c] = refs_[c] != 0;
    for (std::uint64_t c : old_refcount_clusters_)
        if (c < refs_.size() && refs_[c] > 0)
            --refs_[c];
    auto allocate = [&](std::uint64_t count, std::uint64_t& first_free) {
        std::uint64_t c = first_free, run = 0;
        bool first_gap = true;
        for (; c < nb && run < count; ++c) {
            if (used[c]) {
                run = 0;
                continue;
            }
            ++run;
            if (first_gap) {
                first_free = c;
                first_gap = false;
            }
        }
        if (run < count) { // the image grows
            nb = c + count - run;
            used.resize(nb);
        }
        c -= run;
        for (std::uint64_t i = 0; i < count; ++i)
            used[c + i] = true;
        return c;
    };
    std::vector<std::uint64_t> table; // refcount block cluster index + 1 per entry, 0: none
    // Gives every range with a used cluster in [first, end) a block; true when the table had to grow.
    auto place_blocks = [&](std::uint64_t first, std::uint64_t end) {
        bool grown = false;
        std::uint64_t first_free = 0;
        for (std::uint64_t c = first; c < end && c < nb; ++c) {
            if (!used[c])
                continue;
            const std::uint64_t index = c / per_block;
            if (index >= table.size() || table[index] == 0) {
                first_free = std::max(first_free, index * per_block); // not in a block already placed
                const std::uint64_t block = allocate(1, first_free);
                end = std::max(end, block + 1); // the block's own range needs a block too
                if (index >= table.size()) {
                    table.resize(((index + 1) * 8 + cluster - 1) / cluster * cluster / 8, 0);
                    grown = true;
                }
                table[index] = block + 1;
            }
            c = index * per_block + per_block - 1;
        }
        return grown;
    };
    place_blocks(0, nb);
    std::uint64_t table_start = 0, table_clusters = 0;
    std::vector<std::uint64_t> abandoned; // tables placed before the table had to grow
    bool grown = true;
    while (grown) {
        for (std::uint64_t i = 0; i < table_clusters; ++i)
            abandoned.push_back(table_start + i);
        table_clusters = (table.size() * 8 + cluster - 1) / cluster;
        if (table_clusters * cluster > max_refcount_table_bytes)
            throw Error(ErrorCode::NoSpace, "the rebuilt refcount table would exceed 8 MiB");
        std::uint64_t first_free = 0;
        table_start = allocate(table_clusters, first_free); // an earlier, smaller one is simply left free
        grown = place_blocks(table_start, table_start + table_clusters);
    }
    std::unordered_set<std::uint64_t> structures;
    for (std::uint64_t i = 0; i < table_clusters; ++i)
        structures.insert(table_start + i);
    for (std::uint64_t& e : table)
        if (e != 0)
            structures.insert(--e);
    const std::uint64_t max_value = h_.refcount_bits() >= 64 ? UINT64_MAX : (1ull << h_.refcount_bits()) - 1;
    img_.refcount_cache_->clear();
    for (std::size_t b = 0; b < table.size(); ++b) {
        if (table[b] == 0)
            continue;
        std::vector<std::byte> block(cluster);
        for (std::uint64_t i = 0; i < per_block; ++i) {
            const std::uint64_t c = b * per_block + i;
            const std::uint64_t value = std::min(structures.count(c) ? 1 : counted(c), max_value);
            if (value)
                store_refcount_entry(block.data(), i, h_.refcount_order, value);
        }
        img_.file_.write(table[b] * cluster, block);
        table[b] *= cluster;
    }
    // QEMU frees what the new structure leaks in the same check, reporting each, and discards it.
    std::sort(abandoned.begin(), abandoned.end());
    std::vector<std::uint64_t> dropped = old_refcount_clusters_;
    dropped.insert(dropped.end(), abandoned.begin(), abandoned.end());
    std::sort(dropped.begin(), dropped.end());
    for (std::size_t i = 0; i < dropped.size();) {
        const std::uint64_t c = dropped[i];
        std::uint64_t times = 0;
        for (; i < dropped.size() && dropped[i] == c; ++i)
            ++times;
        const bool placed = std::binary_search(abandoned.begin(), abandoned.end(), c);
        const std::uint64_t after = structures.count(c) ? 1 : counted(c);
        const std::uint64_t before = placed ? 1 : counted(c) + times;
        if (before == after)
            continue;
        report(fmt::format("Repairing cluster {} refcount={} reference={}", c, before, after));
        if (after == 0)
            img_.file_.punch_hole(c * cluster, cluster);
    }
    std::vector<std::byte> raw(table.size() * 8);
    for (std::size_t i = 0; i < table.size(); ++i)
        store_be<std::uint64_t>(&raw[i * 8], table[i]);
    raw.resize(table_clusters * cluster, std::byte{0});
    img_.file_.write(table_start * cluster, raw);
    img_.file_.sync();
    std::byte fields[12];
    store_be<std::uint64_t>(fields, table_start * cluster);
    store_be<std::uint32_t>(fields + 8, static_cast<std::uint32_t>(table_clusters));
    img_.file_.write(field::refcount_table_offset, fields);
    img_.file_.sync();
    img_.header_.refcount_table_offset = table_start * cluster;
    img_.header_.refcount_table_clusters = static_cast<std::uint32_t>(table_clusters);
    img_.refcount_table_ = std::move(table);
    img_.note_refcount_table();
    img_.free_cluster_hint_ = 0;
    file_bytes_ = img_.file_.size();
}

void Qcow2Checker::check_copied_flags() {
    const std::uint64_t cluster = h_.cluster_size();
    const std::uint32_t entry_size = h_.l2_entry_size();
    for (std::size_t i = 0; i < img_.l1_.size(); ++i) {
        const std::uint64_t l2 = img_.l1_[i] & l1e_offset_mask;
        if (l2 == 0)
            continue;
        const std::uint64_t refcount = disk_refcount(l2 / cluster);
        const bool copied = (img_.l1_[i] & oflag_copied) != 0;
        if ((refcount == 1) != copied) {
            report(fmt::format("ERROR OFLAG_COPIED L2 cluster: l1_index={} l1_entry={:x} refcount={}", i,
                               img_.l1_[i], refcount));
            if (repair_ == RepairMode::All && img_.writable_) {
                img_.l1_[i] = refcount == 1 ? (img_.l1_[i] | oflag_copied) : (img_.l1_[i] & ~oflag_copied);
                img_.write_l1_entry(i);
                ++result_.corruptions_fixed;
            } else {
                ++result_.corruptions;
            }
        }
        if (l2 + cluster > file_bytes_)
            continue;
        // Without refcount repairs the walk already compared every flag: read only the suspect tables.
        if (!refcounts_changed_ &&
            !std::binary_search(suspect_l2_tables_.begin(), suspect_l2_tables_.end(), l2))
            continue;
        std::vector<std::byte> table(cluster);
        img_.l2_cache_->forget(l2, cluster);
        img_.file_.read_exact(l2, table, "L2 table");
        bool changed = false;
        for (std::uint64_t j = 0; j < h_.l2_entries(); ++j) {
            std::uint64_t entry = load_be64(&table[j * entry_size]);
            const std::uint64_t host = entry & l2e_offset_mask;
            if ((entry & oflag_compressed) || host == 0)
                continue;
            const std::uint64_t data_refcount = disk_refcount(host / cluster);
            if ((data_refcount == 1) == ((entry & oflag_copied) != 0))
                continue;
            report(fmt::format("ERROR OFLAG_COPIED data cluster: l2_entry={:x} refcount={}", entry,
                               data_refcount));
            if (repair_ == RepairMode::All && img_.writable_) {
                entry = data_refcount == 1 ? (entry | oflag_copied) : (entry & ~oflag_copied);
                store_be<std::uint64_t>(&table[j * entry_size], entry);
                changed = true;
                ++result_.corruptions_fixed;
            } else {
                ++result_.corruptions;
            }
        }
        if (changed)
            img_.write_metadata(Metadata::ActiveL2, l2, table);
    }
}

CheckResult Qcow2Checker::run() {
    const std::uint64_t cluster = h_.cluster_size();
    img_.flush();
    file_bytes_ = img_.file_.size();
    file_clusters_ = (file_bytes_ + cluster - 1) / cluster;
    refs_.assign(file_clusters_, 0);
    result_.total_clusters = (h_.size + cluster - 1) / cluster;

    if (img_.options_.for_check && !read_snapshot_table())
        return result_;
    count(0, cluster);
    walk_l1(h_.l1_table_offset, h_.l1_size, true);
    walk_snapshots();
    walk_refcount_table();
    walk_bitmaps();
    if (repair_ != RepairMode::None && !img_.writable_)
        throw Error(ErrorCode::InvalidArgument, "repairing needs the image opened for writing");
    compare_refcounts();
    if (!result_.failure.empty())
        return result_;
    std::sort(suspect_l2_tables_.begin(), suspect_l2_tables_.end());
    check_copied_flags();
    fix_snapshot_table();
    result_.corruptions += snapshot_corruptions_;
    if (!result_.failure.empty())
        return result_;
    if (repair_ != RepairMode::None) {
        img_.flush();
        if (result_.corruptions == 0 && (img_.header_.incompatible_features & incompat_corrupt))
            img_.set_incompatible_bit(incompat_corrupt, false);
    }
    result_.image_end_offset = highest_cluster_ * cluster;
    return result_;
}

CheckResult Qcow2Image::check(RepairMode repair) {
    if ((header_.incompatible_features & incompat_data_file) && !header_.data_file)
        throw Error(ErrorCode::NotSupported,
                    fmt::format("Could not open '{}': 'data-file' is required for this image", file_.path()));
    CheckResult first = Qcow2Checker(*this, repair).run();
    // As QEMU: a repair that leaves no corruption makes a dirty (lazy refcounts) image clean.
    if (repair != RepairMode::None && first.failure.empty() && first.corruptions == 0 &&
        first.check_errors == 0)
        set_incompatible_bit(incompat_dirty, false);
    if (repair == RepairMode::None || !first.failure.empty() ||
        (first.leaks_fixed == 0 && first.corruptions_fixed == 0))
        return first;
    // Like qemu-img: report the state after the repair, with the counts of what was fixed.
    CheckResult second = Qcow2Checker(*this, RepairMode::None).run();
    second.leaks_fixed = first.leaks_fixed;
    second.corruptions_fixed = first.corruptions_fixed;
    second.messages.insert(second.messages.begin(), first.messages.begin(), first.messages.end());
    return second;
}

} // namespace vmstor::qcow2
