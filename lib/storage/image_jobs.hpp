// The work of data-moving jobs, on the qcow2 engine: plain paths and options in, progress and
// cancellation through a JobContext. Runs on a worker thread; touches no shared state.
#pragma once

#include "job_context.hpp"
#include "volume_request.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vmstor::storage {

/// @brief A volume file opened beneath its pool directory with openat2(RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS) and O_NOFOLLOW, so that neither a symlink nor `..` leads outside; a symlink or
/// anything but a regular file is refused (NotAuthorized). The engine reaches a file vmstord creates
/// through engine_path() (/proc/self/fd/N), so that a name swapped after the check cannot redirect it.
class VolumeFile {
  public:
    /// @brief Opens the existing file `path` (pool directory + volume name) with `flags` (O_RDONLY, O_RDWR).
    VolumeFile(const std::string& path, int flags);
    /// @brief Creates `name` in the pool directory `dir` (O_EXCL: AlreadyExists when the name is taken).
    static VolumeFile create(const std::string& dir, const std::string& name);
    ~VolumeFile();
    VolumeFile(VolumeFile&& other) noexcept;
    VolumeFile(const VolumeFile&) = delete;
    VolumeFile& operator=(const VolumeFile&) = delete;
    VolumeFile& operator=(VolumeFile&&) = delete;

    const std::string& path() const { return path_; }
    int fd() const { return fd_; }
    /// @brief /proc/self/fd/N: the opened file itself, whatever its name points at by now.
    std::string engine_path() const;

  private:
    VolumeFile(std::string dir, std::string name, int flags);

    std::string path_;
    int fd_ = -1;
};

struct ImageTarget {
    std::string path;
    std::string format = "qcow2";              ///< raw or qcow2
    std::optional<std::uint64_t> cluster_size; ///< qcow2 only
    bool compress = false;                     ///< qcow2 only: write compressed clusters
    std::string compression_type = "zlib";     ///< zlib or zstd
};

/// @brief Creates the image of a new volume at `path` with the engine, with every option of the request,
/// then applies its owner, group and mode. A failure removes the file.
void create_image_file(const std::string& path, const CreateVolumeRequest& request);

/// @brief Copies the guest data of the image at `source_path` (with its backing chain; as it was at the
/// internal snapshot `snapshot` when given) into a new image. Zero and unallocated ranges are never read
/// and stay holes. A failed or cancelled copy removes the target.
void convert_image_file(const std::string& source_path, const std::string& source_format,
                        const ImageTarget& target, JobContext& context,
                        const std::optional<std::string>& snapshot = std::nullopt);

/// @brief Makes every guest byte read as zero and overwrites the old data where it lay on the host.
void wipe_image_file(const std::string& path, const std::string& format, JobContext& context);

struct StreamRange {
    std::uint64_t offset = 0;
    std::optional<std::uint64_t> length; ///< up to the end of the image (download) or of the stream (upload)
    bool sparse = false;                 ///< skip zeroes: holes in the target instead of written zeroes
};

/// @brief Writes the raw guest data read from `fd` into the image at `path`, from `range.offset` on.
void upload_into_image(int fd, const std::string& path, const std::string& format, const StreamRange& range,
                       JobContext& context);

/// @brief Writes the image's guest data, as raw bytes, to `fd`. With `sparse` and a seekable `fd`, zero
/// ranges become holes.
void download_from_image(int fd, const std::string& path, const std::string& format, const StreamRange& range,
                         JobContext& context);

enum class RepairLevel { None, Leaks, All };

struct CheckReport {
    /// (field, count) with the field names of `qemu-img check --output=json`.
    std::vector<std::pair<std::string, std::uint64_t>> counts;
    std::vector<std::string> messages;
};

/// @brief Checks (and repairs) an image's metadata; NotSupported for raw, which has none.
CheckReport check_image_file(const std::string& path, const std::string& format, RepairLevel repair);

struct MeasureReport {
    std::uint64_t required = 0;
    std::uint64_t fully_allocated = 0;
};

/// @brief What a copy of the image in `target_format` would need (qemu-img measure).
MeasureReport measure_image_file(const std::string& path, const std::string& format,
                                 const std::string& target_format, std::optional<std::uint64_t> cluster_size);

/// @brief qemu-img commit: merges the qcow2 overlay at `path` into its backing file; `keep` leaves the
/// committed data in the overlay too (qemu-img commit -d).
void commit_image_file(const std::string& path, bool keep, JobContext& context);

/// @brief qemu-img rebase: puts the qcow2 image at `path` on `backing` (format `backing_format`; empty
/// for none). Safe by default (guest content unchanged); `unsafe` only rewrites the header.
void rebase_image_file(const std::string& path, const std::string& backing, const std::string& backing_format,
                       bool unsafe, JobContext& context);

/// @brief `qemu-img info --output=json` of the image (with `backing_chain`, of each layer, as a list).
/// Backing files are opened only by their recorded format.
std::string image_info_json(const std::string& path, const std::string& format, bool backing_chain);

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

/// @brief The extents of `qemu-img map --output=json`.
std::vector<MapExtent> map_image_file(const std::string& path, const std::string& format);

} // namespace vmstor::storage
