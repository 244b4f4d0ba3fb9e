// check and repair of the snapshot table, as qemu-img check does: the table is read tolerantly (overhanging
// entries and too much extra data are dropped with -r all), entries with unusable L1 tables are reported,
// and -r all rewrites a damaged table once the refcounts are right.
#include "check.hpp"

#include "common/error.hpp"
#include "format.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

namespace {

// printf's "%#x": no prefix for zero.
std::string alternate_hex(std::uint64_t value) {
    return value == 0 ? "0" : fmt::format("{:#x}", value);
}

// The extra data as QEMU rewrites it: at least VM state size, disk size and icount (-1: unknown), then
// whatever else the entry had.
std::vector<std::byte> complete_extra_data(const Snapshot& s, std::uint64_t virtual_size) {
    std::vector<std::byte> extra(std::max<std::size_t>(24, s.extra_data.size()));
    store_be<std::uint64_t>(&extra[0], s.info.vm_state_size);
    store_be<std::uint64_t>(&extra[8], s.info.disk_size.value_or(virtual_size));
    store_be<std::uint64_t>(&extra[16], s.info.has_icount ? s.info.icount : UINT64_MAX);
    if (s.extra_data.size() > 24)
        std::copy(s.extra_data.begin() + 24, s.extra_data.end(), extra.begin() + 24);
    return extra;
}

} // namespace

bool Qcow2Checker::read_snapshot_table() {
    const bool repair = repair_ == RepairMode::All;
    CheckedSnapshotTable t = read_snapshot_table_for_check(img_.file_, h_, repair);
    for (auto& line : t.messages)
        report(std::move(line));
    if (!t.failure.empty()) {
        ++result_.check_errors;
        result_.failure = t.failure;
        return false;
    }
    img_.snapshots_ = std::move(t.snapshots);
    img_.snapshot_table_bytes_ = t.table_bytes;
    snapshot_corruptions_ = t.discarded + t.extra_cut;
    if (t.discarded > 0) {
        // The count is written now: the dropped entries' clusters become leaks that the refcount repair
        // frees (as QEMU does).
        std::byte field[4];
        const auto count = static_cast<std::uint32_t>(img_.snapshots_.size());
        store_be<std::uint32_t>(field, count);
        img_.file_.write(field::nb_snapshots, field);
        img_.file_.sync();
        img_.header_.nb_snapshots = count;
        result_.corruptions_fixed += t.discarded;
        snapshot_corruptions_ -= t.discarded;
    }
    if (h_.version >= 3) {
        for (std::size_t i = 0; i < img_.snapshots_.size(); ++i) {
            if (img_.snapshots_[i].extra_data.size() >= snapshot_v3_min_extra)
                continue;
            report(
                fmt::format("{} snapshot table entry {} is incomplete", repair ? "Repairing" : "ERROR", i));
            ++snapshot_corruptions_;
        }
    }
    return true;
}

void Qcow2Checker::walk_snapshots() {
    for (const auto& s : img_.snapshots_) {
        if (s.l1_table_offset % h_.cluster_size() != 0) {
            report(
                fmt::format("ERROR snapshot {} ({}) l1_offset={}: L1 table is not cluster aligned; snapshot "
                            "table entry corrupted",
                            s.info.id, s.info.name, alternate_hex(s.l1_table_offset)));
            ++result_.corruptions;
            continue;
        }
        if (std::uint64_t{s.l1_size} * 8 > max_l1_table_bytes) {
            report(
                fmt::format("ERROR snapshot {} ({}) l1_size={}: L1 table is too large; snapshot table entry "
                            "corrupted",
                            s.info.id, s.info.name, alternate_hex(s.l1_size)));
            ++result_.corruptions;
            continue;
        }
        walk_l1(s.l1_table_offset, s.l1_size, false);
    }
    count(h_.snapshots_offset, img_.snapshot_table_bytes_);
}

void Qcow2Checker::fix_snapshot_table() {
    if (repair_ != RepairMode::All || snapshot_corruptions_ == 0 || !result_.failure.empty())
        return;
    std::vector<Snapshot> snapshots = img_.snapshots_;
    for (auto& s : snapshots)
        s.extra_data = complete_extra_data(s, h_.size);
    // The old table's clusters are freed only if the walk counted them (it refuses a table that runs a
    // cluster or more past the end of the file); the refcount repair made them match.
    const std::uint64_t limit = file_bytes_ + h_.cluster_size();
    if (h_.snapshots_offset >= limit || img_.snapshot_table_bytes_ >= limit - h_.snapshots_offset)
        img_.snapshot_table_bytes_ = 0;
    try {
        img_.free_cluster_hint_ = 0; // the refcounts were repaired: the table goes first-fit, as QEMU's
        img_.write_snapshot_table(std::move(snapshots));
    } catch (const Error& e) {
        report(fmt::format("ERROR failed to update snapshot table: {}", e.what()));
        ++result_.check_errors;
        result_.failure = e.what();
        return;
    }
    result_.corruptions_fixed += snapshot_corruptions_;
    snapshot_corruptions_ = 0;
}

} // namespace vmstor::qcow2
