#include "image_jobs.hpp"

#include "imagejson/info_json.hpp"
#include "qcow2/aligned_buffer.hpp"
#include "qcow2/chain_status.hpp"
#include "qcow2/file.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"
#include "stream_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace vmstor::storage {

namespace {

constexpr std::size_t chunk_size = 1 << 20; // one read or write of a streaming job

qcow2::CompressionType compression_type(const std::string& name) {
    if (name == "zlib")
        return qcow2::CompressionType::Zlib;
    if (name == "zstd")
        return qcow2::CompressionType::Zstd;
    throw vmstor::Error(ErrorCode::InvalidArgument,
                        fmt::format("compression_type '{}' is not one of zlib, zstd", name));
}

std::unique_ptr<qcow2::Image> open_image(const VolumeImage& volume, bool writable,
                                         const std::optional<std::string>& snapshot = std::nullopt) {
    qcow2::OpenOptions options;
    options.writable = writable;
    options.write_behind = writable; // every job that writes streams through the image
    options.snapshot = snapshot;
    return open_volume_image(volume, options);
}

bool all_zero(std::span<const std::byte> data) {
    // The first byte is zero and every byte equals the next: memcmp runs at memory speed.
    return data.empty() ||
           (data[0] == std::byte{0} && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
}

/// @brief True when `fd` is a regular file not opened O_APPEND, where a range of zeroes at its offset
/// can be made by the file system instead of written.
bool regular_file_at_offset(int fd) {
    struct stat st {};
    int flags = ::fcntl(fd, F_GETFL);
    return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flags >= 0 && !(flags & O_APPEND);
}

/// @brief Makes the next `length` bytes at the file's offset allocated zeroes, as writing them would,
/// without the writing (FALLOC_FL_ZERO_RANGE), and moves the offset past them. False when the file
/// system cannot: the caller writes the zeroes instead.
bool zero_at_position(int fd, std::size_t length) {
    off_t position = ::lseek(fd, 0, SEEK_CUR);
    if (position < 0 || ::fallocate(fd, FALLOC_FL_ZERO_RANGE, position, static_cast<off_t>(length)) < 0)
        return false;
    if (::lseek(fd, static_cast<off_t>(length), SEEK_CUR) < 0)
        throw system_error(errno, "cannot seek in the download target");
    return true;
}

} // namespace

void create_image_file(NewVolumeFile& file, const CreateVolumeRequest& request) {
    const std::string& path = file.path();
    qcow2::CreateOptions options;
    options.format = qcow2::parse_format(request.format);
    options.size = request.capacity;
    options.version = request.compat == "0.10" ? 2 : 3;
    if (request.cluster_size)
        options.cluster_size = *request.cluster_size;
    options.lazy_refcounts = request.lazy_refcounts;
    options.preallocation = qcow2::parse_preallocation(request.preallocation);
    options.extended_l2 = request.extended_l2;
    options.compression_type =
        compression_type(request.compression_type.empty() ? "zlib" : request.compression_type);
    if (!request.backing_path.empty()) {
        options.backing_file = request.backing_path;
        options.backing_format = request.backing_format;
    }
    qcow2::create_image(file.engine_path(), options);
    const virt::Permissions& permissions = request.permissions;
    if (permissions.mode && ::fchmod(file.fd(), *permissions.mode) < 0)
        throw system_error(errno, fmt::format("cannot set the mode of '{}'", path));
    if ((permissions.owner || permissions.group) &&
        ::fchown(file.fd(), permissions.owner ? *permissions.owner : static_cast<uid_t>(-1),
                 permissions.group ? *permissions.group : static_cast<gid_t>(-1)) < 0)
        throw system_error(errno, fmt::format("cannot set the owner of '{}'", path));
    file.publish();
}

void convert_image_file(const VolumeImage& source_volume, const ImageTarget& target, JobContext& context,
                        const std::optional<std::string>& snapshot) {
    if (!target.into_device && !target.file)
        throw vmstor::Error(ErrorCode::Failed,
                            fmt::format("no new file to convert into for '{}'", target.path));
    {
        auto source = open_image(source_volume, false, snapshot);
        std::uint64_t size = source->virtual_size();
        context.set_total(size);
        qcow2::ConvertOptions options;
        options.target.format = qcow2::parse_format(target.format);
        if (target.cluster_size)
            options.target.cluster_size = *target.cluster_size;
        options.target.compression_type = compression_type(target.compression_type);
        options.compress = target.compress;
        options.sync = target.sync;
        options.cancel = context.cancel_flag();
        options.progress = [&](double percent) {
            context.set_done(static_cast<std::uint64_t>(percent / 100.0 * static_cast<double>(size)));
        };
        options.into_existing = target.into_device;
        qcow2::convert_image(*source, target.file ? target.file->engine_path() : target.path, options);
        context.set_done(size);
    }
    if (target.file)
        target.file->publish(target.sync);
}

void zero_image_from(const VolumeImage& volume, std::uint64_t offset) {
    auto image = open_image(volume, true);
    if (offset < image->virtual_size())
        image->write_zeroes(offset, image->virtual_size() - offset);
    image->flush();
}

void wipe_image_file(const VolumeImage& volume, JobContext& context) {
    const std::string& path = volume.path;
    auto image = open_image(volume, true);
    std::uint64_t size = image->virtual_size();
    context.set_total(size);
    qcow2::AlignedBuffer zeroes(chunk_size);
    std::uint64_t offset = 0;
    while (offset < size) {
        context.stop_if_cancelled("wipe of " + path);
        qcow2::BlockStatus status =
            image->block_status(offset, std::min<std::uint64_t>(size - offset, 1ULL << 30));
        std::uint64_t length = std::max<std::uint64_t>(status.length, 1);
        // Overwrite what lies on the host, so that the old data is gone and not just unreferenced.
        if (status.data) {
            for (std::uint64_t at = offset; at < offset + length; at += chunk_size) {
                context.stop_if_cancelled("wipe of " + path);
                std::size_t n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, offset + length - at));
                image->write(at, std::span(zeroes).first(n));
                context.set_done(at + n);
            }
        }
        offset += length;
        context.set_done(offset);
    }
    if (image->format() == qcow2::ImageFormat::Qcow2)
        image->write_zeroes(0, size);
    image->flush();
}

namespace {

/// @brief The upload of `count` bytes of a regular file from `position` into a raw image at `offset`: the
/// kernel copies the source's data (copy_file_range) and its holes are never read but zeroed in the
/// target, keeping their space as written zeroes would. Returns the bytes covered (less: the file shrank).
std::uint64_t copy_file_into_raw(int fd, std::uint64_t position, std::uint64_t count,
                                 const VolumeImage& volume, std::uint64_t offset, JobContext& context) {
    const std::string& path = volume.path;
    qcow2::File target = open_volume_file(volume, true);
    target.write_behind(qcow2::write_behind_window);
    const std::uint64_t end = position + count;
    std::uint64_t at = position;
    while (at < end) {
        context.stop_if_cancelled("upload into " + path);
        const off_t data = ::lseek(fd, static_cast<off_t>(at), SEEK_DATA);
        struct stat st {};
        // ENXIO: only a hole up to the end, unless the file shrank under us (then the caller reads on).
        if (data < 0 &&
            (errno != ENXIO || ::fstat(fd, &st) < 0 || static_cast<std::uint64_t>(st.st_size) <= at))
            break;
        const std::uint64_t data_start = data < 0 ? end : std::min(static_cast<std::uint64_t>(data), end);
        if (data_start > at) {
            target.zero_range(offset + (at - position), data_start - at);
            at = data_start;
        } else {
            const off_t hole = ::lseek(fd, static_cast<off_t>(at), SEEK_HOLE);
            const std::uint64_t data_end = hole < 0 ? end : std::min(static_cast<std::uint64_t>(hole), end);
            // In chunks, so that progress, the rate cap and a cancel are seen as the copy goes.
            const std::uint64_t length = std::min<std::uint64_t>(data_end - at, 8u << 20);
            const std::uint64_t copied = target.copy_from(fd, at, offset + (at - position), length);
            at += copied;
            if (copied < length)
                break;
        }
        context.set_done(at - position);
    }
    target.sync();
    return at - position;
}

/// @brief Reads `fd` from its current position into the image at range.offset + done on, until `limit`
/// bytes or the stream's end; returns the new `done`.
std::uint64_t stream_into_image(int fd, qcow2::Image& image, const StreamRange& range, std::uint64_t done,
                                std::uint64_t limit, JobContext& context) {
    qcow2::AlignedBuffer buffer(chunk_size);
    CallerStream stream(fd, context, "upload stream into " + image.path());
    while (done < limit) {
        context.stop_if_cancelled("upload into " + image.path());
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, limit - done));
        std::size_t got = stream.read_fully(std::span(buffer).first(want));
        if (got == 0)
            break;
        auto data = std::span<const std::byte>(buffer).first(got);
        if (range.sparse && all_zero(data))
            image.write_zeroes(range.offset + done, got);
        else
            image.write(range.offset + done, data);
        done += got;
        context.set_done(done);
    }
    image.flush();
    return done;
}

} // namespace

void upload_into_image(int fd, const VolumeImage& volume, const StreamRange& range, JobContext& context) {
    auto image = open_image(volume, true);
    std::uint64_t size = image->virtual_size();
    if (range.offset > size)
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("upload offset {} is past the end of the volume ({} bytes)", range.offset, size));
    std::uint64_t limit = std::min(size - range.offset, range.length.value_or(size - range.offset));
    // A regular file tells how much is left to read; a pipe does not, and counts against the volume.
    struct stat st {};
    const off_t position = ::lseek(fd, 0, SEEK_CUR);
    const bool regular =
        ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && position >= 0 && st.st_size >= position;
    const std::uint64_t in_file =
        regular ? std::min(limit, static_cast<std::uint64_t>(st.st_size - position)) : 0;
    context.set_total(range.length || !regular ? limit : in_file);
    std::uint64_t done = 0;
    if (regular && !range.sparse && image->format() == qcow2::ImageFormat::Raw) {
        image.reset();
        done = copy_file_into_raw(fd, static_cast<std::uint64_t>(position), in_file, volume, range.offset,
                                  context);
        // Where reading would have left it; a file that grew or shrank goes on the plain way.
        if (::lseek(fd, position + static_cast<off_t>(done), SEEK_SET) < 0)
            throw system_error(errno, "cannot seek in the upload stream");
        image = open_image(volume, true);
    }
    done = stream_into_image(fd, *image, range, done, limit, context);
    if (range.length && done < *range.length && done < limit)
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("the upload stream ended after {} of the {} bytes announced", done, *range.length));
}

void download_from_image(int fd, const VolumeImage& volume, const StreamRange& range, JobContext& context) {
    const std::string& path = volume.path;
    auto image = open_image(volume, false);
    std::uint64_t size = image->virtual_size();
    if (range.offset > size)
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("download offset {} is past the end of the volume "
                                        "({} bytes)",
                                        range.offset, size));
    std::uint64_t end =
        range.offset + std::min(size - range.offset, range.length.value_or(size - range.offset));
    context.set_total(end - range.offset);
    bool seekable = ::lseek(fd, 0, SEEK_CUR) >= 0;
    bool zero_in_place = !range.sparse && seekable && regular_file_at_offset(fd);
    qcow2::AlignedBuffer buffer(chunk_size);
    CallerStream stream(fd, context, "download stream of " + path);
    std::uint64_t at = range.offset;
    while (at < end) {
        context.stop_if_cancelled("download of " + path);
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, end - at));
        auto chunk = std::span(buffer).first(n);
        image->read(at, chunk);
        if (range.sparse && seekable && all_zero(chunk)) {
            if (::lseek(fd, static_cast<off_t>(n), SEEK_CUR) < 0)
                throw system_error(errno, "cannot seek in the download target");
        } else if (zero_in_place && all_zero(chunk)) {
            zero_in_place = zero_at_position(fd, n);
            if (!zero_in_place)
                stream.write_fully(chunk);
        } else {
            stream.write_fully(chunk);
        }
        at += n;
        context.set_done(at - range.offset);
    }
    if (range.sparse && seekable) {
        // A trailing hole needs the file's length set explicitly.
        off_t length = ::lseek(fd, 0, SEEK_CUR);
        if (length >= 0 && ::ftruncate(fd, length) < 0 && errno != EINVAL)
            throw system_error(errno, "cannot set the length of the download target");
    }
}

CheckReport check_image_file(const VolumeImage& volume, RepairLevel repair) {
    if (volume.format == "raw")
        throw vmstor::Error(ErrorCode::NotSupported,
                            fmt::format("'{}' is a raw image: raw has no metadata to check", volume.path));
    auto image = open_image(volume, repair != RepairLevel::None);
    qcow2::CheckResult result = image->check(repair == RepairLevel::All     ? qcow2::RepairMode::All
                                             : repair == RepairLevel::Leaks ? qcow2::RepairMode::Leaks
                                                                            : qcow2::RepairMode::None);
    if (repair != RepairLevel::None)
        image->flush();
    CheckReport report;
    report.counts = {{"check-errors", result.check_errors},
                     {"corruptions", result.corruptions},
                     {"leaks", result.leaks},
                     {"corruptions-fixed", result.corruptions_fixed},
                     {"leaks-fixed", result.leaks_fixed},
                     {"image-end-offset", result.image_end_offset},
                     {"total-clusters", result.total_clusters},
                     {"allocated-clusters", result.allocated_clusters},
                     {"fragmented-clusters", result.fragmented_clusters},
                     {"compressed-clusters", result.compressed_clusters}};
    report.messages = result.messages;
    return report;
}

MeasureReport measure_image_file(const VolumeImage& volume, const std::string& target_format,
                                 std::optional<std::uint64_t> cluster_size) {
    auto image = open_image(volume, false);
    qcow2::CreateOptions target;
    target.format = qcow2::parse_format(target_format);
    if (cluster_size)
        target.cluster_size = *cluster_size;
    qcow2::MeasureResult result = qcow2::measure_image(target, image.get(), 0);
    return {result.required, result.fully_allocated};
}

void commit_image_file(const VolumeImage& volume, bool keep, JobContext& context) {
    auto overlay = open_image(volume, true);
    std::uint64_t size = overlay->virtual_size();
    context.set_total(size);
    qcow2::CommitOptions options;
    options.empty_overlay = !keep;
    options.cancel = context.cancel_flag();
    options.progress = [&](double percent) {
        context.set_done(static_cast<std::uint64_t>(percent / 100.0 * static_cast<double>(size)));
    };
    qcow2::commit_image(*overlay, options);
    overlay->flush();
    context.set_done(size);
}

void rebase_image_file(const VolumeImage& volume, const std::string& backing,
                       const std::string& backing_format, bool unsafe, JobContext& context) {
    auto image = open_image(volume, true);
    std::uint64_t size = image->virtual_size();
    context.set_total(size);
    qcow2::RebaseOptions options;
    options.backing_file = backing;
    if (!backing.empty())
        options.backing_format = backing_format; // always recorded: a backing file's format is never probed
    options.unsafe = unsafe;
    options.cancel = context.cancel_flag();
    options.progress = [&](double percent) {
        context.set_done(static_cast<std::uint64_t>(percent / 100.0 * static_cast<double>(size)));
    };
    qcow2::rebase_image(*image, options);
    image->flush();
    context.set_done(size);
}

std::string image_info_json(const VolumeImage& volume, bool backing_chain) {
    img::Json layers = img::Json::array();
    std::string layer_path = volume.path;
    std::string layer_format = volume.format;
    for (std::size_t depth = 0;; ++depth) {
        qcow2::OpenOptions options;
        options.format = qcow2::parse_format(layer_format);
        options.open_backing = false;
        // The volume itself through its checked descriptor; its backing files by name, as the engine does.
        qcow2::ImageInfo info =
            (depth == 0 ? open_volume_image(volume, options) : qcow2::Image::open(layer_path, options))
                ->info();
        layers.push_back(img::info_json(info));
        // A bound on hostile chains that loop.
        if (!backing_chain || !info.full_backing_filename || !info.backing_format || depth >= 64)
            break;
        layer_path = *info.full_backing_filename;
        layer_format = *info.backing_format;
    }
    return img::qemu_json(backing_chain ? layers : layers.at(0));
}

std::vector<MapExtent> map_image_file(const VolumeImage& volume, std::uint64_t offset,
                                      std::optional<std::uint64_t> length, std::size_t max_extents) {
    auto image = open_image(volume, false);
    const std::uint64_t size = image->virtual_size();
    if (offset > size)
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("map offset {} is past the end of the volume ({} bytes)", offset, size));
    std::vector<MapExtent> out;
    qcow2::for_each_map_extent(*image, offset, length.value_or(size - offset),
                               [&](const qcow2::MapExtent& extent) {
                                   const qcow2::ChainStatus& s = extent.status;
                                   out.push_back({extent.start, s.length, s.depth, s.present, s.zero, s.data,
                                                  s.compressed, s.offset});
                                   return out.size() < max_extents;
                               });
    return out;
}

} // namespace vmstor::storage
