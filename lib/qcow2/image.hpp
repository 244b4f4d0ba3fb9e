// The engine's public API: open an image (qcow2 or raw), read and write guest data, inspect it.
// One Image is used from one thread at a time; many images may be used at once. No global state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vmstor::qcow2 {

enum class ImageFormat { Raw, Qcow2 };

std::string_view format_name(ImageFormat format);
/// @brief "raw" or "qcow2"; throws NotSupported for anything else.
ImageFormat parse_format(std::string_view name);

/// How an open image's file is locked with QEMU's lock bytes (image_lock.hpp), as qemu-img locks it.
struct LockOptions {
    bool force_share = false;   // qemu-img -U: let others hold every permission (read-only opens)
    bool metadata_only = false; // qemu-img info reads no guest data: it holds no consistent read
    bool resize = false;        // the image is opened to be resized: a raw image holds resize too
    bool unshare_write = false; // qemu-img convert's source: nobody may write or resize it, raw too
};

struct OpenOptions {
    /// Unset: probe (a qcow2 magic means qcow2, anything else raw).
    std::optional<ImageFormat> format;
    bool writable = false;
    /// Open the backing chain (needed to read guest data; info can do without it).
    bool open_backing = true;
    /// Refuse a backing file without a recorded format instead of probing it (untrusted images).
    bool require_backing_format = true;
    /// The image is being built (create, convert) and nobody uses it yet: skip the syncs between
    /// dependent metadata writes that only protect an image in use; flush() still syncs.
    bool building = false;
    /// false: flush() writes everything back without syncing the file (qemu-img convert's cache=unsafe,
    /// for a target nobody uses until the command ends).
    bool sync = true;
    /// Writes come as one long stream (convert, upload): write them back to the disk as they come (every
    /// 32 MiB) instead of all at the final sync, so that the disk works while the job does.
    bool write_behind = false;
    /// Open for writing only to repair metadata (check -r): allowed even on an image marked corrupt.
    bool for_repair = false;
    /// Open for check: the snapshot table is not read here but by check, which reports its damage as
    /// qemu-img check does instead of refusing the image.
    bool for_check = false;
    /// Upper bound of the L2 slice cache in bytes (QEMU's default maximum is 32 MiB).
    std::uint64_t l2_cache_max_bytes = 32ull << 20;
    /// How many backing files may still be opened below this image: a chain that loops ends there.
    unsigned max_backing_depth = 64;
    /// Open (read-only, qcow2 only) the guest data as it was at this internal snapshot, found by id
    /// first, then by name (qemu-img convert -l).
    std::optional<std::string> snapshot = std::nullopt;
    /// An open descriptor of the image file (O_RDWR when `writable`) that the caller checked: the engine
    /// uses a duplicate of it and never opens the path given to Image::open, which then only names the
    /// image in messages and is what relative backing file names resolve against. -1: open the path.
    /// Backing files are always opened by their (resolved) names.
    int fd = -1;
    /// Set: the image's file is locked as qemu-img 7.2 locks it (a reader or a writer of its format)
    /// before anything is written, until the image is closed, and so are its backing files (readers)
    /// and the images the engine opens for an operation on it (commit's base, rebase's new backing).
    /// Another process's conflicting lock throws ImageLockConflict. Unset: no locks (vmstord locks
    /// what its jobs write itself).
    std::optional<LockOptions> locking = std::nullopt;
};

/// @brief What one layer says about a guest range: [offset, offset+length) all alike.
struct BlockStatus {
    std::uint64_t length = 0;
    bool allocated = false; // this layer decides the content (data or zero); else the backing file does
    bool zero = false;      // reads as zeroes
    bool data = false;      // backed by host data (or compressed data)
    bool compressed = false;
    std::optional<std::uint64_t> host_offset; // where the data lies in this layer's file
};

struct SnapshotInfo {
    std::string id;
    std::string name;
    std::uint64_t vm_state_size = 0;
    std::uint32_t date_sec = 0;
    std::uint32_t date_nsec = 0;
    std::uint64_t vm_clock_nsec = 0;
    std::uint64_t icount = 0;
    bool has_icount = false;
    std::optional<std::uint64_t> disk_size;
};

struct BitmapInfo {
    std::string name;
    std::uint64_t granularity = 0;
    bool in_use = false;
    bool auto_ = false; // "auto": tracks every write
};

struct ImageInfo {
    ImageFormat format = ImageFormat::Raw;
    std::string filename;
    std::uint64_t virtual_size = 0;
    std::uint64_t actual_size = 0;
    bool dirty = false;
    // qcow2 only:
    std::optional<std::uint64_t> cluster_size;
    std::string compat; // "0.10" or "1.1"
    std::string compression_type;
    bool lazy_refcounts = false;
    std::uint32_t refcount_bits = 0;
    bool corrupt = false;
    bool extended_l2 = false;
    std::optional<std::string> data_file;
    bool data_file_raw = false;
    std::vector<BitmapInfo> bitmaps; // only when they are consistent (autoclear bit set), as QEMU shows them
    std::optional<std::string> backing_filename;      // as recorded in the image
    std::optional<std::string> full_backing_filename; // resolved relative to the image
    std::optional<std::string> backing_format;
    std::vector<SnapshotInfo> snapshots;
};

enum class RepairMode { None, Leaks, All };

struct CheckResult {
    std::uint64_t corruptions = 0;
    std::uint64_t leaks = 0;
    std::uint64_t check_errors = 0;
    std::uint64_t corruptions_fixed = 0;
    std::uint64_t leaks_fixed = 0;
    std::uint64_t image_end_offset = 0;
    std::uint64_t total_clusters = 0;
    std::uint64_t allocated_clusters = 0;
    std::uint64_t fragmented_clusters = 0;
    std::uint64_t compressed_clusters = 0;
    std::vector<std::string> messages; // one line per finding, as qemu-img prints them on stderr
    /// Non-empty: the check could not complete, and this says why (qemu-img's "Check failed: ...").
    std::string failure;
};

class Image {
  public:
    virtual ~Image() = default;

    /// @brief Opens an image. Throws vmstor::Error: NotFound, Corrupt (which field, why), NotSupported.
    static std::unique_ptr<Image> open(const std::string& path, const OpenOptions& options = {});

    virtual ImageFormat format() const = 0;
    virtual const std::string& path() const = 0;
    virtual std::uint64_t virtual_size() const = 0;
    /// @brief The granularity of allocation (cluster size; 512 for raw... as qemu reports none).
    virtual std::uint64_t cluster_size() const = 0;

    /// @brief Reads guest data; ranges past the end of the backing file read as zeroes.
    virtual void read(std::uint64_t offset, std::span<std::byte> out) = 0;
    virtual void write(std::uint64_t offset, std::span<const std::byte> data) = 0;
    /// @brief Makes the range read as zeroes, without writing data where the format allows.
    virtual void write_zeroes(std::uint64_t offset, std::uint64_t length) = 0;
    /// @brief Drops whole clusters in the range (they read as zeroes, or from the backing file on v2).
    virtual void discard(std::uint64_t offset, std::uint64_t length) = 0;
    /// @brief Writes every cached change in crash-safe order and syncs the file.
    virtual void flush() = 0;
    /// @brief Status of this layer from offset on, for at most `length` bytes.
    virtual BlockStatus block_status(std::uint64_t offset, std::uint64_t length) = 0;
    /// @brief The opened backing image, or nullptr.
    virtual Image* backing() = 0;
    virtual ImageInfo info() = 0;
    /// @brief Checks (and repairs) the image's metadata; NotSupported for formats without checks.
    virtual CheckResult check(RepairMode repair) = 0;
    /// @brief Changes the virtual size; shrinking needs allow_shrink and refuses to drop allocated
    /// data unless allow_shrink is given (the caller decided).
    virtual void resize(std::uint64_t new_size, bool allow_shrink) = 0;
};

/// @brief Resolves a backing file name relative to the directory of the image that names it.
std::string resolve_backing_path(const std::string& image_path, const std::string& backing_name);

} // namespace vmstor::qcow2
