// Whole-image operations of the API: create, convert, compare, measure.
#pragma once

#include "compression.hpp"
#include "image.hpp"

#include <atomic>
#include <functional>

namespace vmstor::qcow2 {

enum class Preallocation { Off, Metadata, Falloc, Full };

Preallocation parse_preallocation(std::string_view name);

struct CreateOptions {
    ImageFormat format = ImageFormat::Qcow2;
    std::uint64_t size = 0;
    std::uint32_t version = 3; // compat 1.1; 2 for compat 0.10
    std::uint64_t cluster_size = 65536;
    std::uint32_t refcount_bits = 16;
    bool lazy_refcounts = false;
    Preallocation preallocation = Preallocation::Off;
    bool extended_l2 = false;
    CompressionType compression_type = CompressionType::Zlib;
    std::optional<std::string> backing_file;
    std::optional<std::string> backing_format;
};

/// @brief Applies one `-o key=value` option of qemu-img create; throws InvalidArgument naming it.
void set_create_option(CreateOptions& options, std::string_view key, std::string_view value);

/// @brief Creates an image (the file must not be a directory; an existing file is overwritten as
/// qemu-img does). Throws InvalidArgument with qemu-img's wording for invalid combinations. A create that
/// fails removes the file (as qemu-img does) when `path` names a regular file.
void create_image(const std::string& path, const CreateOptions& options);
/// @brief Removes the regular file `path` after a create or convert into it failed (not a block device,
/// nor a /proc/self/fd link); errors are ignored.
void remove_made_file(const std::string& path) noexcept;

using ProgressCallback = std::function<void(double percent)>;

struct ConvertOptions {
    CreateOptions target;  // size is taken from the source
    bool compress = false; // -c
    unsigned threads = 0;  // compression threads beside the caller's; 0: one per core but one
    ProgressCallback progress;
    const std::atomic<bool>* cancel = nullptr; // set to stop with ErrorCode::Cancelled
    bool sync = true; // false: no fdatasync at the end (qemu-img convert's default cache=unsafe)
    /// Write into the existing raw image at the target path (a block device at least as large as the
    /// source) instead of creating one: what it held before is old data, so every range not written
    /// with data, up to its end, is zeroed instead of left alone.
    bool into_existing = false;
    /// Lock the target as qemu-img does once it is created (OpenOptions::locking); unset: no locks.
    std::optional<LockOptions> target_locking = std::nullopt;
};

/// @brief Copies the guest data of `source` (and its backing chain) into a new image. Ranges the source
/// reports as zero or unallocated are never read and stay holes (or are zeroed: `into_existing`). A convert
/// that fails (or is cancelled) removes the target it created (as create_image).
void convert_image(Image& source, const std::string& target_path, const ConvertOptions& options);

struct CompareResult {
    bool identical = true;
    std::uint64_t mismatch_offset = 0;
    bool status_mismatch = false; // strict mode: allocation status differs at mismatch_offset
};

/// @brief Compares guest contents like qemu-img compare (a longer image must be zero past the shorter);
/// `strict` also fails where the block status (zero/data) differs, as qemu-img compare -s.
CompareResult compare_images(Image& a, Image& b, const ProgressCallback& progress = {}, bool strict = false);

struct MeasureResult {
    std::uint64_t required = 0;
    std::uint64_t fully_allocated = 0;
    std::optional<std::uint64_t> bitmaps;
};

/// @brief qemu-img measure: the size a new image needs, for `source` (or for an empty one of `size`).
MeasureResult measure_image(const CreateOptions& target, Image* source, std::uint64_t size);

/// @brief qemu-img resize --preallocation: grows `image` to `new_size` and allocates the new part as
/// `mode` says (Off: just resize, shrinking refused). Metadata is refused for raw images.
void grow_image(Image& image, std::uint64_t new_size, Preallocation mode);

/// @brief The internal snapshots of an image (none for raw).
std::vector<SnapshotInfo> list_snapshots(Image& image);
/// @brief qemu-img snapshot -c: a disk-only snapshot with the next free numeric id. The image must be an
/// opened-writable qcow2; a name already used throws AlreadyExists.
void create_snapshot(Image& image, const std::string& name);
/// @brief qemu-img snapshot -a: the active state becomes the snapshot's (its virtual size too).
/// The snapshot is found by id first, then by name; NotFound otherwise.
void apply_snapshot(Image& image, const std::string& name_or_id);
/// @brief qemu-img snapshot -d: removes the snapshot and releases what only it referenced.
void delete_snapshot(Image& image, const std::string& name_or_id);

struct CommitOptions {
    bool empty_overlay = true; // false: keep the committed clusters in the overlay (qemu-img commit -d)
    ProgressCallback progress;
    const std::atomic<bool>* cancel = nullptr; // set to stop with ErrorCode::Cancelled
};

/// @brief qemu-img commit: copies what the overlay itself allocates into its backing image (opened
/// writable with the recorded backing format; none recorded is refused), growing a smaller base as
/// qemu does, flushes the base, then (empty_overlay) unallocates the committed clusters of the overlay.
void commit_image(Image& overlay, const CommitOptions& options);

struct RebaseOptions {
    std::string backing_file;                  // as recorded in the header; empty: no backing file
    std::optional<std::string> backing_format; // required with a backing file, as qemu-img 7.2
    bool unsafe = false;                       // -u: only the header changes
    bool force_share_backing = false;          // -U: the new backing file is opened sharing everything
    ProgressCallback progress;
    const std::atomic<bool>* cancel = nullptr;
};

/// @brief qemu-img rebase: safe mode first writes into the image every range it does not allocate whose
/// content differs between the old chain and the new backing, then changes the header in one write.
void rebase_image(Image& image, const RebaseOptions& options);

} // namespace vmstor::qcow2
