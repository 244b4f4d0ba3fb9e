// Opening a qcow2 image: header, tables, caches, backing chain; header updates; info.
#include "bitmap_directory.hpp"
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

namespace {

std::vector<std::uint64_t> read_be64_table(const File& file, std::uint64_t offset, std::uint64_t entries,
                                           const char* what) {
    std::vector<std::byte> raw(entries * 8);
    file.read_exact(offset, raw, what);
    std::vector<std::uint64_t> table(entries);
    for (std::uint64_t i = 0; i < entries; ++i)
        table[i] = load_be64(&raw[i * 8]);
    return table;
}

bool ranges_overlap(std::uint64_t a, std::uint64_t a_len, std::uint64_t b, std::uint64_t b_len) {
    return a_len > 0 && b_len > 0 && a < b + b_len && b < a + a_len;
}

} // namespace

Qcow2Image::Qcow2Image(const std::string& path, const OpenOptions& options)
    : file_(File::image(path, options.fd, options.writable)),
      lock_(lock_opened_image(file_.descriptor(), path, ImageFormat::Qcow2, options)),
      header_(read_header(file_, !options.for_check)), options_(options), writable_(options.writable) {
    auto corrupt = [&](const std::string& why) {
        return Error(ErrorCode::Corrupt, fmt::format("'{}' is not a valid qcow2 image: {}", path, why));
    };
    if (writable_ && options.write_behind)
        file_.write_behind(write_behind_window);
    if (writable_ && !options.for_repair && (header_.incompatible_features & incompat_corrupt))
        throw Error(ErrorCode::Corrupt,
                    fmt::format("'{}' is marked corrupt and cannot be opened for writing (repair it with "
                                "check -r all)",
                                path));
    if (header_.incompatible_features & incompat_data_file) {
        if (!header_.data_file && (writable_ || options.open_backing))
            throw Error(ErrorCode::NotSupported,
                        fmt::format("Could not open '{}': 'data-file' is required for this image, and "
                                    "external data files are not supported",
                                    path));
        if (writable_ || options.open_backing)
            throw Error(
                ErrorCode::NotSupported,
                fmt::format("'{}' uses an unsupported incompatible feature: external data file", path));
    }
    compression_ =
        header_.compression_type == compression_zstd ? CompressionType::Zstd : CompressionType::Zlib;
    const std::uint64_t l1_bytes = std::uint64_t{header_.l1_size} * 8;
    const std::uint64_t rt_bytes = std::uint64_t{header_.refcount_table_clusters} * header_.cluster_size();
    if (ranges_overlap(header_.l1_table_offset, l1_bytes, header_.refcount_table_offset, rt_bytes))
        throw corrupt("the L1 table overlaps the refcount table");
    load_tables();

    const std::uint64_t cluster = header_.cluster_size();
    const std::size_t slice = static_cast<std::size_t>(std::min<std::uint64_t>(cluster, 4096));
    const std::uint64_t l2_needed = (header_.size + cluster - 1) / cluster * header_.l2_entry_size();
    const std::uint64_t l2_bytes = std::min(l2_needed, options.l2_cache_max_bytes);
    l2_cache_ = std::make_unique<MetadataCache>(
        slice, std::max<std::size_t>(4, static_cast<std::size_t>(l2_bytes / slice)),
        [this](std::uint64_t offset, std::vector<std::byte>& out) {
            file_.read_exact(offset, out, "L2 table");
        },
        [this](std::uint64_t offset, const std::vector<std::byte>& data) {
            // An L2 slice may point at clusters just counted: their refcounts must be on disk first.
            if (!lazy_refcounts_ && refcount_cache_->has_dirty()) {
                refcount_cache_->write_back();
                ordered_sync();
            }
            write_metadata(Metadata::ActiveL2, offset, data);
        });
    refcount_cache_ = std::make_unique<MetadataCache>(
        static_cast<std::size_t>(cluster),
        std::max<std::size_t>(4, static_cast<std::size_t>((4ull << 20) / cluster)),
        [this](std::uint64_t offset, std::vector<std::byte>& out) {
            file_.read_exact(offset, out, "refcount block");
        },
        [this](std::uint64_t offset, const std::vector<std::byte>& data) {
            write_metadata(Metadata::RefcountBlock, offset, data);
        });

    if (writable_ && !options.for_repair && (header_.incompatible_features & incompat_dirty)) {
        // Lazy refcounts were in use when the image was last closed uncleanly: rebuild them (check -r
        // repairs only what it is asked to, as qemu-img's).
        check(RepairMode::All);
        set_incompatible_bit(incompat_dirty, false);
    }
    if (options.snapshot)
        view_snapshot(*options.snapshot);
    if (options.open_backing)
        open_backing(options);
}

Qcow2Image::~Qcow2Image() {
    if (!writable_)
        return;
    try {
        flush();
        store_bitmaps();
        if (write_started_ && lazy_refcounts_) {
            set_incompatible_bit(incompat_dirty, false);
            file_.sync();
        }
    } catch (...) {
        // A destructor cannot report; callers who care call flush() themselves.
    }
}

void Qcow2Image::load_tables() {
    const std::uint64_t file_size = file_.size();
    const std::uint64_t cluster = header_.cluster_size();
    auto corrupt = [&](const std::string& why) {
        return Error(ErrorCode::Corrupt,
                     fmt::format("'{}' is not a valid qcow2 image: {}", file_.path(), why));
    };
    if (header_.l1_size > 0) {
        if (header_.l1_table_offset + std::uint64_t{header_.l1_size} * 8 > file_size)
            throw corrupt(fmt::format("the L1 table at {:#x} ({} entries) passes the end of the file",
                                      header_.l1_table_offset, header_.l1_size));
        l1_ = read_be64_table(file_, header_.l1_table_offset, header_.l1_size, "L1 table");
    }
    const std::uint64_t rt_entries = std::uint64_t{header_.refcount_table_clusters} * cluster / 8;
    if (header_.refcount_table_offset + rt_entries * 8 > file_size)
        throw corrupt(fmt::format("the refcount table at {:#x} passes the end of the file",
                                  header_.refcount_table_offset));
    refcount_table_ = read_be64_table(file_, header_.refcount_table_offset, rt_entries, "refcount table");
    note_refcount_table();
    if (!options_.for_check) // check reads the table itself, tolerating what it reports
        snapshots_ = read_snapshot_table(file_, header_, snapshot_table_bytes_);
}

void Qcow2Image::open_backing(const OpenOptions& options) {
    if (header_.backing_file.empty())
        return;
    if (options.max_backing_depth == 0)
        throw Error(ErrorCode::Corrupt,
                    fmt::format("'{}': the backing chain is longer than {} images (a loop?) at '{}'",
                                file_.path(), OpenOptions{}.max_backing_depth, header_.backing_file));
    OpenOptions backing_options;
    backing_options.writable = false;
    backing_options.require_backing_format = options.require_backing_format;
    backing_options.l2_cache_max_bytes = options.l2_cache_max_bytes;
    backing_options.max_backing_depth = options.max_backing_depth - 1;
    backing_options.locking = options.locking;
    if (backing_options.locking)
        backing_options.locking->resize = false;
    if (header_.backing_format) {
        try {
            backing_options.format = parse_format(*header_.backing_format);
        } catch (const Error& e) {
            throw Error(e.code(), fmt::format("'{}': backing file '{}': {}", file_.path(),
                                              header_.backing_file, e.what()));
        }
    } else if (options.require_backing_format) {
        throw Error(ErrorCode::NotSupported,
                    fmt::format("'{}': the backing file '{}' has no recorded format; refusing to probe it",
                                file_.path(), header_.backing_file));
    }
    try {
        backing_ = Image::open(resolve_backing_path(file_.path(), header_.backing_file), backing_options);
    } catch (const ImageLockConflict& e) {
        throw ImageLockConflict(std::string("Could not open backing file: ") + e.what()); // QEMU's words
    }
}

void Qcow2Image::write_header() {
    std::vector<std::byte> encoded = encode_header(header_);
    encoded.resize(header_.cluster_size(), std::byte{0});
    write_metadata(Metadata::Header, 0, encoded);
}

void Qcow2Image::set_incompatible_bit(std::uint64_t bit, bool on) {
    if (header_.version < 3)
        return;
    std::uint64_t value = on ? (header_.incompatible_features | bit) : (header_.incompatible_features & ~bit);
    if (value == header_.incompatible_features)
        return;
    header_.incompatible_features = value;
    std::byte field[8];
    store_be<std::uint64_t>(field, value);
    file_.write(field::incompatible_features, field);
    file_.sync();
}

void Qcow2Image::mark_corrupt(const std::string& why) {
    if (writable_) {
        try {
            set_incompatible_bit(incompat_corrupt, true);
        } catch (...) {
            // Already failing; the Corrupt error below is what matters.
        }
    }
    throw Error(ErrorCode::Corrupt, fmt::format("'{}': {}; the image is marked corrupt", file_.path(), why));
}

void Qcow2Image::begin_write() {
    if (!writable_)
        throw Error(ErrorCode::InvalidArgument, fmt::format("'{}' is opened read-only", file_.path()));
    if (header_.incompatible_features & incompat_corrupt)
        throw Error(ErrorCode::Corrupt,
                    fmt::format("'{}' is marked corrupt; repair it before writing", file_.path()));
    if (write_started_)
        return;
    write_started_ = true;
    bool changed = false;
    // Bitmaps are in use while we write (a crash leaves them inconsistent, as QEMU's). Unknown autoclear
    // bits must be cleared before the first write.
    mark_bitmaps_in_use();
    if (header_.autoclear_features & ~autoclear_known) {
        header_.autoclear_features &= autoclear_known;
        changed = true;
    }
    lazy_refcounts_ = header_.version >= 3 && (header_.compatible_features & compat_lazy_refcounts);
    if (lazy_refcounts_) {
        header_.incompatible_features |= incompat_dirty;
        changed = true;
    }
    if (changed) {
        write_header();
        file_.sync();
    }
}

void Qcow2Image::ordered_sync() {
    if (!options_.building)
        file_.sync_pending();
}

void Qcow2Image::flush() {
    if (!writable_)
        return;
    refcount_cache_->write_back();
    ordered_sync();
    l2_cache_->write_back();
    // Clusters the written L2 entries no longer point at can be released once those are on disk.
    if (!pending_releases_.empty()) {
        ordered_sync();
        apply_pending_releases();
        refcount_cache_->write_back();
    }
    if (options_.sync)
        file_.sync_pending();
}

ImageInfo Qcow2Image::info() {
    ImageInfo info;
    info.format = ImageFormat::Qcow2;
    info.filename = file_.path();
    info.virtual_size = header_.size;
    info.actual_size = file_.allocated_bytes();
    info.dirty = (header_.incompatible_features & incompat_dirty) != 0;
    info.cluster_size = header_.cluster_size();
    info.compat = header_.version >= 3 ? "1.1" : "0.10";
    info.compression_type = compression_ == CompressionType::Zstd ? "zstd" : "zlib";
    info.lazy_refcounts = (header_.compatible_features & compat_lazy_refcounts) != 0;
    info.refcount_bits = header_.refcount_bits();
    info.corrupt = (header_.incompatible_features & incompat_corrupt) != 0;
    info.extended_l2 = header_.extended_l2();
    if (header_.incompatible_features & incompat_data_file) {
        info.data_file = header_.data_file;
        info.data_file_raw = (header_.autoclear_features & autoclear_data_file_raw) != 0;
    }
    if (header_.bitmaps && (header_.autoclear_features & autoclear_bitmaps))
        for (const auto& b : read_bitmap_directory(file_, header_))
            info.bitmaps.push_back({b.name, 1ull << std::min<unsigned>(b.granularity_bits, 63),
                                    (b.flags & bitmap_flag_in_use) != 0, (b.flags & bitmap_flag_auto) != 0});
    if (!header_.backing_file.empty()) {
        info.backing_filename = header_.backing_file;
        info.full_backing_filename = resolve_backing_path(file_.path(), header_.backing_file);
        info.backing_format = header_.backing_format;
    }
    for (const auto& s : snapshots_)
        info.snapshots.push_back(s.info);
    return info;
}

} // namespace vmstor::qcow2
