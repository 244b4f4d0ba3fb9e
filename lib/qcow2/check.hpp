// The checker behind Qcow2Image::check, split by concern over check.cpp (references and refcounts) and
// check_snapshots.cpp (the snapshot table). Internal to the qcow2 driver.
#pragma once

#include "format.hpp"
#include "qcow2_image.hpp"

#include <unordered_map>

namespace vmstor::qcow2 {

class Qcow2Checker {
  public:
    Qcow2Checker(Qcow2Image& image, RepairMode repair) : img_(image), h_(image.header_), repair_(repair) {}

    CheckResult run();

  private:
    void count(std::uint64_t offset, std::uint64_t bytes);
    std::uint64_t counted(std::uint64_t cluster) const;
    std::uint64_t disk_refcount(std::uint64_t cluster);
    void walk_l1(std::uint64_t l1_offset, std::uint32_t l1_size, bool active);
    void walk_l1_entry(std::uint64_t entry, bool active);
    // --- the snapshot table (check_snapshots.cpp) ---
    bool read_snapshot_table();
    void walk_snapshots();
    void fix_snapshot_table();
    void walk_l2(std::uint64_t l2_offset, bool active);
    void walk_refcount_table();
    void walk_bitmaps();
    void compare_refcounts();
    void rebuild_refcounts();
    void check_copied_flags();
    void report(std::string line) { result_.messages.push_back(std::move(line)); }

    Qcow2Image& img_;
    const Header& h_;
    RepairMode repair_;
    CheckResult result_;
    std::uint64_t file_clusters_ = 0;
    std::uint64_t file_bytes_ = 0;
    std::vector<std::uint16_t> refs_; // 0xffff means: look in big_refs_
    std::unordered_map<std::uint64_t, std::uint64_t> big_refs_;
    bool needs_rebuild_ = false;
    std::vector<std::uint64_t> old_refcount_clusters_; // the refcount table's and blocks' clusters
    std::uint64_t highest_cluster_ = 0;                // one past the last cluster counted or referenced
    std::uint64_t memo_index_ = UINT64_MAX;
    const std::byte* memo_block_ = nullptr;
    bool refcounts_changed_ = false;
    std::vector<std::uint64_t> suspect_l2_tables_; // active L2 tables with a COPIED flag that looked wrong
    // Snapshot table damage found while reading it; -r all fixes it by rewriting the table at the end.
    std::uint64_t snapshot_corruptions_ = 0;
};

} // namespace vmstor::qcow2
