// Creating images: the qcow2 layout of qemu-img (header, refcount table, one refcount block, then the
// L1 table) grown to the requested size by the engine itself, and raw files; preallocation.
#include "common/error.hpp"
#include "common/size.hpp"
#include "format.hpp"
#include "operations.hpp"
#include "qcow2_image.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmstor::qcow2 {

using namespace format;

namespace {

Error invalid(const std::string& message) {
    return Error(ErrorCode::InvalidArgument, message);
}

bool parse_bool(std::string_view key, std::string_view value) {
    if (value == "on" || value == "true" || value == "yes")
        return true;
    if (value == "off" || value == "false" || value == "no")
        return false;
    throw invalid(fmt::format("Parameter '{}' expects 'on' or 'off'", key));
}

void validate(const CreateOptions& o) {
    if (o.format == ImageFormat::Raw) {
        if (o.preallocation == Preallocation::Metadata)
            throw invalid("Invalid parameter 'metadata'");
        if (o.backing_file)
            throw invalid("'raw' does not support backing files");
        return;
    }
    if (o.cluster_size < 512 || o.cluster_size > (2u << 20) || (o.cluster_size & (o.cluster_size - 1)))
        throw invalid("Cluster size must be a power of two between 512 and 2048k");
    if (o.refcount_bits == 0 || o.refcount_bits > 64 || (o.refcount_bits & (o.refcount_bits - 1)))
        throw invalid("Refcount width must be a power of two and may not exceed 64 bits");
    if (o.version == 2) {
        if (o.refcount_bits != 16)
            throw invalid("Different refcount widths than 16 bits require compatibility level 1.1 or above "
                          "(use version=v3 or greater)");
        if (o.lazy_refcounts)
            throw invalid("Lazy refcounts only supported with compatibility level 1.1 and above (use "
                          "version=v3 or greater)");
        if (o.compression_type != CompressionType::Zlib)
            throw invalid(
                "Non-zlib compression type is only supported with compatibility level 1.1 and above "
                "(use version=v3 or greater)");
        if (o.extended_l2)
            throw invalid(
                "Extended L2 entries are only supported with compatibility level 1.1 and above (use "
                "version=v3 or greater)");
    }
    if (o.extended_l2 && o.cluster_size < 16384)
        throw invalid("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");
    if (o.backing_file && o.preallocation != Preallocation::Off && !o.extended_l2)
        throw invalid(
            "Backing file and preallocation can only be used at the same time if extended_l2 is on");
    if (o.backing_file && !o.backing_format)
        throw invalid("Backing file specified without backing format");
    if (o.backing_file && o.backing_file->size() > max_backing_name)
        throw invalid("Backing file name too long");
    if (o.backing_format && !o.backing_file)
        throw invalid("Backing format cannot be used without backing file");
}

void create_raw(const std::string& path, const CreateOptions& o) {
    File file(path, File::Mode::CreateTruncate);
    file.truncate(o.size);
    if (o.preallocation == Preallocation::Falloc)
        file.allocate(0, o.size);
    else if (o.preallocation == Preallocation::Full)
        file.write_zeroes(0, o.size);
}

void write_empty_qcow2(const std::string& path, const CreateOptions& o) {
    Header h;
    h.version = o.version;
    h.cluster_bits = static_cast<std::uint32_t>(std::countr_zero(o.cluster_size));
    h.refcount_order = static_cast<std::uint32_t>(std::countr_zero(o.refcount_bits));
    h.refcount_table_offset = o.cluster_size;
    h.refcount_table_clusters = 1;
    h.header_length = o.version == 2 ? header_v2_length : header_v3_length;
    if (o.version >= 3) {
        if (o.lazy_refcounts)
            h.compatible_features |= compat_lazy_refcounts;
        if (o.extended_l2)
            h.incompatible_features |= incompat_extended_l2;
        if (o.compression_type == CompressionType::Zstd) {
            h.incompatible_features |= incompat_compression;
            h.compression_type = compression_zstd;
        }
        h.feature_names = {
            {0, 0, "dirty bit"},        {0, 1, "corrupt bit"},         {0, 2, "external data file"},
            {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
            {2, 0, "bitmaps"},          {2, 1, "raw external data"}};
    }
    if (o.backing_file) {
        h.backing_file = *o.backing_file;
        h.backing_format = o.backing_format;
    }
    std::vector<std::byte> image(3 * o.cluster_size);
    std::vector<std::byte> encoded = encode_header(h);
    std::copy(encoded.begin(), encoded.end(), image.begin());
    store_be<std::uint64_t>(&image[o.cluster_size], 2 * o.cluster_size); // refcount table -> block
    // The refcount block counts the header, the refcount table and itself.
    for (unsigned c = 0; c < 3; ++c) {
        std::byte* block = &image[2 * o.cluster_size];
        const unsigned bits = o.refcount_bits;
        if (bits >= 8) {
            block[(c + 1) * bits / 8 - 1] = std::byte{1};
        } else {
            block[c * bits / 8] |= static_cast<std::byte>(1u << (c * bits % 8));
        }
    }
    File file(path, File::Mode::CreateTruncate);
    file.write(0, image);
    file.sync();
}

} // namespace

Preallocation parse_preallocation(std::string_view name) {
    if (name == "off")
        return Preallocation::Off;
    if (name == "metadata")
        return Preallocation::Metadata;
    if (name == "falloc")
        return Preallocation::Falloc;
    if (name == "full")
        return Preallocation::Full;
    throw invalid(fmt::format("Invalid parameter '{}'", name));
}

void set_create_option(CreateOptions& o, std::string_view key, std::string_view value) {
    if (key == "size") {
        o.size = parse_size(value);
    } else if (key == "compat") {
        if (value == "0.10" || value == "v2")
            o.version = 2;
        else if (value == "1.1" || value == "v3")
            o.version = 3;
        else
            throw invalid(fmt::format("Invalid parameter '{}'", value));
    } else if (key == "cluster_size") {
        o.cluster_size = parse_size(value);
    } else if (key == "refcount_bits") {
        o.refcount_bits = static_cast<std::uint32_t>(parse_size(value));
    } else if (key == "lazy_refcounts") {
        o.lazy_refcounts = parse_bool(key, value);
    } else if (key == "preallocation") {
        o.preallocation = parse_preallocation(value);
    } else if (key == "extended_l2") {
        o.extended_l2 = parse_bool(key, value);
    } else if (key == "compression_type") {
        if (value == "zlib")
            o.compression_type = CompressionType::Zlib;
        else if (value == "zstd")
            o.compression_type = CompressionType::Zstd;
        else
            throw invalid(fmt::format("Invalid parameter '{}'", value));
    } else if (key == "backing_file") {
        o.backing_file = std::string(value);
    } else if (key == "backing_fmt") {
        o.backing_format = std::string(value);
    } else {
        throw invalid(fmt::format("Invalid parameter '{}'", key));
    }
}

void create_image(const std::string& path, const CreateOptions& options) {
    CreateOptions o = options;
    o.size = (o.size + 511) / 512 * 512; // qemu-img rounds up to whole sectors
    validate(o);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        throw invalid(fmt::format("Could not create '{}': Is a directory", path));
    if (o.backing_format)
        parse_format(*o.backing_format);
    try {
        if (o.format == ImageFormat::Raw)
            return create_raw(path, o);
        write_empty_qcow2(path, o);
        OpenOptions open;
        open.format = ImageFormat::Qcow2;
        open.writable = true;
        open.open_backing = false;
        open.building = true;
        auto image = std::make_unique<Qcow2Image>(path, open);
        if (o.size > 0)
            image->resize(o.size, false);
        if (o.preallocation != Preallocation::Off)
            image->preallocate(o.preallocation);
        image->flush();
    } catch (...) {
        remove_made_file(path);
        throw;
    }
}

void remove_made_file(const std::string& path) noexcept {
    // As qemu-img: a create that failed leaves no file, even where one existed (it was truncated). Only
    // a regular file: a block device stays, and a /proc/self/fd link names a file its caller owns.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
        ::unlink(path.c_str());
}

void Qcow2Image::preallocate(Preallocation mode, std::uint64_t first_cluster, std::uint64_t end_cluster) {
    begin_write();
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t clusters = end_cluster != 0 ? end_cluster : (header_.size + cluster - 1) / cluster;
    const std::uint64_t per_table = header_.l2_entries();
    for (std::uint64_t first = first_cluster; first < clusters; first = (first / per_table + 1) * per_table) {
        const std::uint64_t count = std::min((first / per_table + 1) * per_table, clusters) - first;
        for (std::uint64_t gc = first; gc < first + count; ++gc)
            if (const L2Entry e = get_l2_entry(gc); e.entry != 0 || e.bitmap != 0)
                throw Error(ErrorCode::Corrupt,
                            fmt::format("'{}': guest cluster {} is already allocated; cannot preallocate it",
                                        file_.path(), gc));
        prepare_l2_table(first);
        const std::uint64_t host = allocate_clusters(count);
        guard_metadata_write(Metadata::Data, host, count * cluster);
        // The clusters exist in the file (and hold zeroes) before any L2 entry points at them: a full
        // disk stops this with the clusters counted but unreferenced (leaks), never referenced past the
        // end of the file. Reused clusters (an old refcount table, say) still hold bytes: zero them.
        const std::uint64_t file_size = file_.size();
        if (host < file_size)
            file_.punch_hole(host, std::min(count * cluster, file_size - host));
        if (mode == Preallocation::Falloc)
            file_.allocate(host, count * cluster);
        else if (mode == Preallocation::Full)
            file_.write_zeroes(host, count * cluster);
        if (file_.size() < host + count * cluster)
            file_.truncate(host + count * cluster);
        for (std::uint64_t i = 0; i < count; ++i)
            // With extended L2 the subclusters stay unallocated (bitmap 0), as QEMU preallocates them.
            set_l2_entry(first + i, {(host + i * cluster) | oflag_copied, 0});
    }
    flush();
}

} // namespace vmstor::qcow2
