// The qcow2 driver: one class whose members are split by concern over several files
// (qcow2_open.cpp, cluster_map.cpp, qcow2_io.cpp, refcounts.cpp, overlap.cpp, check.cpp, resize.cpp).
#pragma once

#include "bitmap_directory.hpp"
#include "compression.hpp"
#include "file.hpp"
#include "header.hpp"
#include "image.hpp"
#include "image_lock.hpp"
#include "metadata_cache.hpp"
#include "operations.hpp"
#include "snapshot_table.hpp"

#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace vmstor::qcow2 {

/// @brief How a guest subcluster (or cluster) is backed, decoded from its L2 entry.
enum class ClusterKind { Unallocated, ZeroPlain, ZeroAllocated, Normal, Compressed };

struct L2Entry {
    std::uint64_t entry = 0;
    std::uint64_t bitmap = 0; // extended L2 only
};

/// @brief A guest range with one kind; for Normal and ZeroAllocated, host is where it starts.
struct MappedExtent {
    ClusterKind kind = ClusterKind::Unallocated;
    std::uint64_t host = 0;
    std::uint64_t length = 0;
    L2Entry entry; // of the first cluster (compressed extents are one cluster)
};

/// @brief Kinds of metadata, for the overlap check before every metadata write.
enum class Metadata {
    Header,
    ActiveL1,
    ActiveL2,
    RefcountTable,
    RefcountBlock,
    SnapshotTable,
    SnapshotL1,
    BitmapDirectory,
    Data
};

class Qcow2Image final : public Image {
  public:
    Qcow2Image(const std::string& path, const OpenOptions& options);
    ~Qcow2Image() override;

    ImageFormat format() const override { return ImageFormat::Qcow2; }
    const std::string& path() const override { return file_.path(); }
    std::uint64_t virtual_size() const override { return header_.size; }
    std::uint64_t cluster_size() const override { return header_.cluster_size(); }
    void read(std::uint64_t offset, std::span<std::byte> out) override;
    void write(std::uint64_t offset, std::span<const std::byte> data) override;
    void write_zeroes(std::uint64_t offset, std::uint64_t length) override;
    void discard(std::uint64_t offset, std::uint64_t length) override;
    void flush() override;
    BlockStatus block_status(std::uint64_t offset, std::uint64_t length) override;
    Image* backing() override { return backing_.get(); }
    ImageInfo info() override;
    CheckResult check(RepairMode repair) override;
    void resize(std::uint64_t new_size, bool allow_shrink) override;

    /// @brief Writes one whole guest cluster compressed (falls back to uncompressed if it does not shrink).
    void write_compressed_cluster(std::uint64_t guest_cluster, std::span<const std::byte> data);
    /// @brief Stores already compressed data as guest cluster `guest_cluster`.
    void write_compressed_data(std::uint64_t guest_cluster, std::span<const std::byte> compressed);
    /// @brief Allocates host clusters for every guest cluster from `first_cluster` up to `end_cluster`
    /// (0: the virtual size's end): create's preallocation modes, and resize's for the grown part (which
    /// may lie past the virtual size until the header shows it); they must be unallocated.
    void preallocate(Preallocation mode, std::uint64_t first_cluster = 0, std::uint64_t end_cluster = 0);
    /// @brief Grows the image to `new_size` with its new clusters preallocated as `mode` says; the
    /// header's size changes last.
    void grow(std::uint64_t new_size, Preallocation mode);
    const Header& header() const { return header_; }
    /// @brief How the image's file is locked (OpenOptions::locking), for the images opened beside it.
    const std::optional<LockOptions>& locking() const { return options_.locking; }
    /// @brief Changes the backing file name and format in one header write (layers.cpp); the data must
    /// already be flushed. The new backing is opened (when open_backing) for later reads.
    void set_backing_file(const std::string& name, const std::optional<std::string>& format,
                          bool open_backing);
    /// @brief Makes every cluster of the active L1 unallocated (reads from the backing file again).
    void make_empty();

    // --- internal snapshots (snapshots.cpp) ---
    void create_snapshot(const std::string& name);
    void apply_snapshot(const std::string& name_or_id);
    void delete_snapshot(const std::string& name_or_id);

  private:
    /// @brief Reads from now on show the snapshot's guest data (read-only images only).
    void view_snapshot(const std::string& name_or_id);
    friend class Qcow2Checker;

    // --- internal snapshots (snapshots.cpp) ---
    std::size_t find_snapshot(const std::string& name_or_id) const;
    std::vector<std::uint64_t> read_snapshot_l1(const Snapshot& snapshot) const;
    /// @brief L1 entries the snapshot's disk size needs; Corrupt when over the L1 table limit.
    std::uint64_t snapshot_l1_entries(const Snapshot& snapshot) const;
    void change_tree_refcounts(const std::vector<std::uint64_t>& l1, std::int64_t delta);
    void refresh_copied_flags();
    /// @brief Writes the refcounts, then OFLAG_COPIED as they say, then flushes.
    void settle_copied_flags();
    /// @brief create_snapshot once the active clusters are counted for the snapshot.
    void write_new_snapshot(const std::string& name, const std::vector<std::uint64_t>& l1,
                            std::uint64_t l1_offset);
    void write_snapshot_table(std::vector<Snapshot> snapshots);
    void forget_freed_state();

    // --- persistent dirty bitmaps (bitmap_store.cpp) ---
    /// @brief The image has persistent bitmaps that QEMU would load (extension present, autoclear bit set).
    bool has_bitmaps() const;
    /// @brief Sets in-use on every bitmap before the first write, as QEMU does while open for writing.
    void mark_bitmaps_in_use();
    /// @brief Remembers a guest write (data, zeroes, discard) for the enabled bitmaps.
    void note_guest_write(std::uint64_t offset, std::uint64_t length);
    /// @brief Refuses (as QEMU's resize) when a bitmap was already inconsistent (in use) when opened.
    void refuse_inconsistent_bitmaps() const;
    /// @brief The bitmaps follow a resize: bits past a smaller end are dropped, as QEMU truncates them.
    void note_bitmaps_resize(std::uint64_t new_size);
    /// @brief On a clean close: writes the bitmaps (new clusters, then a new directory, then the header
    /// switches to it, then the old clusters are freed) with in-use cleared.
    void store_bitmaps();
    /// @brief Writes the bitmap's changed clusters and table anew; what the old ones held goes to `release`.
    void store_bitmap(BitmapEntry& entry, std::vector<std::pair<std::uint64_t, std::uint64_t>>& release);
    std::vector<std::uint64_t> read_bitmap_table(const BitmapEntry& entry) const;
    // --- resize (resize.cpp) ---
    void grow_or_shrink(std::uint64_t new_size, bool allow_shrink, Preallocation mode);
    void grow_l1_table(std::uint64_t l1_needed);
    /// @brief Flushes, then writes the header's virtual size.
    void write_size(std::uint64_t new_size);

    // --- open (qcow2_open.cpp) ---
    void load_tables();
    void open_backing(const OpenOptions& options);
    void write_header();
    void set_incompatible_bit(std::uint64_t bit, bool on);
    void mark_corrupt(const std::string& why);

    // --- cluster mapping (cluster_map.cpp) ---
    std::uint64_t l2_slice_offset(std::uint64_t l2_table, std::uint64_t l2_index) const;
    L2Entry get_l2_entry(std::uint64_t guest_cluster);
    void set_l2_entry(std::uint64_t guest_cluster, const L2Entry& e);
    ClusterKind kind_of(const L2Entry& e, unsigned subcluster, std::uint64_t guest_cluster) const;
    /// @brief Makes the L2 table for guest_cluster exist and be writable (copied if shared).
    void prepare_l2_table(std::uint64_t guest_cluster);
    void write_l1_entry(std::size_t index);

    // --- guest I/O (qcow2_io.cpp) ---
    MappedExtent map_extent(std::uint64_t guest_offset, std::uint64_t max_length);
    void check_data_access() const;
    void check_range(std::uint64_t offset, std::uint64_t length) const;
    bool metadata_preallocated();
    void refine_with_file_holes(BlockStatus& status) const;
    void read_cluster_range(std::uint64_t guest_offset, std::span<std::byte> out);
    void write_subclusters(std::uint64_t guest_cluster, std::uint64_t in_cluster,
                           std::span<const std::byte> data);
    void read_from_backing(std::uint64_t guest_offset, std::span<std::byte> out);
    void read_compressed(const L2Entry& e, std::uint64_t guest_cluster, std::uint64_t in_cluster,
                         std::span<std::byte> out);
    void write_cluster(std::uint64_t guest_cluster, std::uint64_t in_cluster,
                       std::span<const std::byte> data);
    void write_new_clusters(std::uint64_t first_cluster, std::uint64_t count,
                            std::span<const std::byte> data);
    void zero_cluster(std::uint64_t guest_cluster);
    void release_host_cluster(const L2Entry& old, std::uint64_t guest_cluster);
    bool writable_in_place(std::uint64_t guest_cluster, const L2Entry& e) const;
    void apply_pending_releases();
    void begin_write();

    // --- refcounts and allocation (refcounts.cpp) ---
    std::uint64_t get_refcount(std::uint64_t cluster_index);
    void set_refcount(std::uint64_t cluster_index, std::uint64_t value);
    void change_refcount(std::uint64_t cluster_index, std::int64_t delta);
    /// @brief Allocates `count` contiguous host clusters with refcount 1; returns the host offset.
    std::uint64_t allocate_clusters(std::uint64_t count);
    /// @brief Allocates `bytes` at byte granularity for compressed data (may share a cluster).
    std::uint64_t allocate_bytes(std::uint64_t bytes);
    void free_clusters(std::uint64_t host_offset, std::uint64_t count);
    bool refcount_block_present(std::uint64_t cluster_index) const;
    void ensure_refcount_block(std::uint64_t cluster_index);
    void grow_refcount_table(std::uint64_t needed_cluster_index);
    std::uint64_t find_free_run(std::uint64_t count, std::uint64_t start);
    void write_refcount_table_entry(std::size_t index);
    /// @brief Recomputes refcount_table_in_use_ after the whole table was read or replaced.
    void note_refcount_table();

    // --- overlap check (overlap.cpp) ---
    void guard_metadata_write(Metadata kind, std::uint64_t offset, std::uint64_t length);
    void write_metadata(Metadata kind, std::uint64_t offset, std::span<const std::byte> data);

    // --- ordering ---
    /// @brief A sync between dependent metadata writes (skipped while a new image is being built).
    void ordered_sync();

    File file_;
    std::unique_ptr<ImageLock> lock_; // declared after file_: taken before the header is read
    Header header_;
    OpenOptions options_;
    bool writable_ = false;
    bool write_started_ = false;
    bool lazy_refcounts_ = false;
    std::vector<std::uint64_t> l1_;
    std::vector<std::uint64_t> refcount_table_;
    // Entries up to the last one that points at a block: the overlap check of every data write scans
    // only these (a new image's table has thousands of empty entries).
    std::size_t refcount_table_in_use_ = 0;
    std::vector<Snapshot> snapshots_;
    std::uint64_t snapshot_table_bytes_ = 0;
    std::unique_ptr<MetadataCache> l2_cache_;
    std::unique_ptr<MetadataCache> refcount_cache_;
    std::unique_ptr<Image> backing_;
    std::uint64_t free_cluster_hint_ = 0;
    std::optional<bool> metadata_preallocation_;
    CompressionType compression_ = CompressionType::Zlib;
    // The last decompressed cluster, since sequential reads hit the same one many times.
    std::uint64_t decompressed_entry_ = 0;
    std::vector<std::byte> decompressed_;
    std::uint64_t compressed_tail_ = 0; // next free byte in the partly used compressed cluster
    // Persistent bitmaps we marked in use (their flags as found), and what the guest wrote meanwhile.
    std::optional<std::vector<std::uint32_t>> bitmap_flags_at_open_;
    std::map<std::uint64_t, std::uint64_t> written_; // start -> end of guest ranges, merged
    std::uint64_t bitmaps_min_size_ = 0;             // the smallest virtual size since they were marked
    // Host clusters to release once the L2 entries that stopped pointing at them are on disk.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pending_releases_; // (cluster index, count)
};

} // namespace vmstor::qcow2
