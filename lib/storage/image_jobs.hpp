// The work of data-moving jobs, on the qcow2 engine: plain paths and options in, progress and
// cancellation through a JobContext. Runs on a worker thread; touches no shared state.
#pragma once

#include "job_context.hpp"
#include "new_volume_file.hpp"
#include "volume_file.hpp"
#include "volume_request.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vmstor::storage {

struct ImageTarget {
    std::string path;
    /// The new file to fill, in a pool with a directory: published under `path` once complete.
    std::shared_ptr<NewVolumeFile> file;
    std::string format = "qcow2";              ///< raw or qcow2
    std::optional<std::uint64_t> cluster_size; ///< qcow2 only
    bool compress = false;                     ///< qcow2 only: write compressed clusters
    std::string compression_type = "zlib";     ///< zlib or zstd
    /// false: the job ends without fdatasync, the data may still be only in the page cache (as with
    /// qemu-img convert's default -t unsafe); a power cut can then lose it.
    bool sync = true;
    /// The device of a volume libvirt made (a pool without a directory), raw: written through its path;
    /// every byte not copied is zeroed, and a failure leaves its deletion to the caller (through libvirt).
    bool into_device = false;
};

/// @brief Creates the image of a new volume in `file` with the engine, with every option of the request,
/// applies its owner, group and mode, then publishes it under its name. A failure leaves no file.
void create_image_file(NewVolumeFile& file, const CreateVolumeRequest& request);

/// @brief Copies the guest data of the image `source` (with its backing chain; as it was at the
/// internal snapshot `snapshot` when given) into a new image: `target.file`, published when complete, or
/// the device at `target.path` (`into_device`). Zero and unallocated ranges are never read and stay holes
/// (on a device: are zeroed). A failed or cancelled copy leaves no target file.
void convert_image_file(const VolumeImage& source, const ImageTarget& target, JobContext& context,
                        const std::optional<std::string>& snapshot = std::nullopt);

/// @brief Zeroes the image from `offset` to its end (the rest of a new device after what was written).
void zero_image_from(const VolumeImage& volume, std::uint64_t offset);

/// @brief Makes every guest byte read as zero and overwrites the old data where it lay on the host.
void wipe_image_file(const VolumeImage& volume, JobContext& context);

struct StreamRange {
    std::uint64_t offset = 0;
    std::optional<std::uint64_t> length; ///< up to the end of the image (download) or of the stream (upload)
    bool sparse = false;                 ///< skip zeroes: holes in the target instead of written zeroes
};

/// @brief Writes the raw guest data read from `fd` into the image, from `range.offset` on.
void upload_into_image(int fd, const VolumeImage& volume, const StreamRange& range, JobContext& context);

/// @brief Writes the image's guest data, as raw bytes, to `fd`. With `sparse` and a seekable `fd`, zero
/// ranges become holes.
void download_from_image(int fd, const VolumeImage& volume, const StreamRange& range, JobContext& context);

enum class RepairLevel { None, Leaks, All };

struct CheckReport {
    /// (field, count) with the field names of `qemu-img check --output=json`.
    std::vector<std::pair<std::string, std::uint64_t>> counts;
    std::vector<std::string> messages;
};

/// @brief Checks (and repairs) an image's metadata; NotSupported for raw, which has none.
CheckReport check_image_file(const VolumeImage& volume, RepairLevel repair);

struct MeasureReport {
    std::uint64_t required = 0;
    std::uint64_t fully_allocated = 0;
};

/// @brief What a copy of the image in `target_format` would need (qemu-img measure).
MeasureReport measure_image_file(const VolumeImage& volume, const std::string& target_format,
                                 std::optional<std::uint64_t> cluster_size);

/// @brief qemu-img commit: merges the qcow2 overlay into its backing file; `keep` leaves the
/// committed data in the overlay too (qemu-img commit -d).
void commit_image_file(const VolumeImage& overlay, bool keep, JobContext& context);

/// @brief qemu-img rebase: puts the qcow2 image on `backing` (format `backing_format`; empty
/// for none). Safe by default (guest content unchanged); `unsafe` only rewrites the header.
void rebase_image_file(const VolumeImage& volume, const std::string& backing,
                       const std::string& backing_format, bool unsafe, JobContext& context);

/// @brief `qemu-img info --output=json` of the image (with `backing_chain`, of each layer, as a list).
/// Backing files are opened only by their recorded format.
std::string image_info_json(const VolumeImage& volume, bool backing_chain);

struct MapExtent {
    std::uint64_t start = 0;
    std::uint64_t length = 0;
    int depth = 0;
    bool present = false;
    bool zero = false;
    bool data = false;
    bool compressed = false;
    std::optional<std::uint64_t> offset;
};

/// @brief The extents of `qemu-img map --output=json --start-offset=offset --max-length=length` (no
/// `length`: to the end), at most `max_extents` of them: when there are more, the last one returned is
/// whole and the next starts where it ends. InvalidArgument for an offset past the image's end.
std::vector<MapExtent> map_image_file(const VolumeImage& volume, std::uint64_t offset,
                                      std::optional<std::uint64_t> length, std::size_t max_extents);

} // namespace vmstor::storage
