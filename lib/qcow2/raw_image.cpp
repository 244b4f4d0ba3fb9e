#include "raw_image.hpp"

#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

RawImage::RawImage(const std::string& path, const OpenOptions& options)
    : file_(File::image(path, options.fd, options.writable)),
      lock_(lock_opened_image(file_.descriptor(), path, ImageFormat::Raw, options)), size_(file_.size()),
      sync_(options.sync) {
    if (options.writable && options.write_behind)
        file_.write_behind(write_behind_window);
}

void RawImage::check_range(std::uint64_t offset, std::uint64_t length) const {
    if (offset > size_ || length > size_ - offset)
        throw Error(ErrorCode::InvalidArgument, fmt::format("'{}': range {}+{} is beyond the virtual size {}",
                                                            file_.path(), offset, length, size_));
}

void RawImage::read(std::uint64_t offset, std::span<std::byte> out) {
    check_range(offset, out.size());
    file_.read_or_zero(offset, out);
}

void RawImage::write(std::uint64_t offset, std::span<const std::byte> data) {
    check_range(offset, data.size());
    file_.write(offset, data);
}

void RawImage::write_zeroes(std::uint64_t offset, std::uint64_t length) {
    check_range(offset, length);
    file_.punch_hole(offset, length);
}

void RawImage::discard(std::uint64_t offset, std::uint64_t length) {
    check_range(offset, length);
    file_.punch_hole(offset, length);
}

void RawImage::flush() {
    if (file_.writable() && sync_)
        file_.sync();
}

BlockStatus RawImage::block_status(std::uint64_t offset, std::uint64_t length) {
    check_range(offset, length);
    BlockStatus s;
    s.allocated = true;
    s.host_offset = offset;
    const std::uint64_t data = file_.next_data(offset);
    if (data > offset) {
        s.zero = true;
        s.length = std::min(data, offset + length) - offset;
    } else {
        s.data = true;
        s.length = std::min(file_.next_hole(offset), offset + length) - offset;
    }
    if (s.length == 0) { // a file that changed under us: report one data byte range conservatively
        s.zero = false;
        s.data = true;
        s.length = length;
    }
    return s;
}

ImageInfo RawImage::info() {
    ImageInfo info;
    info.format = ImageFormat::Raw;
    info.filename = file_.path();
    info.virtual_size = size_;
    info.actual_size = file_.allocated_bytes();
    return info;
}

CheckResult RawImage::check(RepairMode) {
    throw Error(ErrorCode::NotSupported, "This image format does not support checks");
}

void RawImage::resize(std::uint64_t new_size, bool allow_shrink) {
    if (new_size < size_ && !allow_shrink)
        throw Error(ErrorCode::InvalidArgument, "Use the --shrink option to perform a shrink operation.");
    file_.truncate(new_size);
    size_ = new_size;
}

std::string_view format_name(ImageFormat format) {
    return format == ImageFormat::Raw ? "raw" : "qcow2";
}

ImageFormat parse_format(std::string_view name) {
    if (name == "raw")
        return ImageFormat::Raw;
    if (name == "qcow2")
        return ImageFormat::Qcow2;
    throw Error(ErrorCode::NotSupported,
                fmt::format("Unknown image format '{}' (raw and qcow2 are supported)", name));
}

void RawImage::preallocate(Preallocation mode, std::uint64_t from, std::uint64_t to) {
    if (mode == Preallocation::Falloc)
        file_.allocate(from, to - from);
    else if (mode == Preallocation::Full)
        file_.write_zeroes(from, to - from);
    else if (mode == Preallocation::Metadata)
        throw Error(ErrorCode::NotSupported, "Unsupported preallocation mode: metadata");
}

std::unique_ptr<Image> Image::open(const std::string& path, const OpenOptions& options) {
    ImageFormat format;
    if (options.format) {
        format = *options.format;
    } else {
        File probe = File::image(path, options.fd, false);
        std::byte magic[4] = {};
        probe.read_or_zero(0, magic);
        format = format::load_be32(magic) == format::magic ? ImageFormat::Qcow2 : ImageFormat::Raw;
    }
    if (format == ImageFormat::Raw && options.snapshot)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("'{}' is a raw image: it has no snapshot '{}'", path, *options.snapshot));
    if (format == ImageFormat::Raw)
        return std::make_unique<RawImage>(path, options);
    return std::make_unique<Qcow2Image>(path, options);
}

std::string resolve_backing_path(const std::string& image_path, const std::string& backing_name) {
    if (backing_name.empty() || backing_name.front() == '/' || backing_name.find(':') != std::string::npos)
        return backing_name;
    const auto slash = image_path.rfind('/');
    if (slash == std::string::npos)
        return backing_name;
    return image_path.substr(0, slash + 1) + backing_name;
}

} // namespace vmstor::qcow2
