#include "header.hpp"

#include "common/error.hpp"
#include "format.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

namespace {

Error corrupt(const File& file, const std::string& why) {
    return Error(ErrorCode::Corrupt, fmt::format("'{}' is not a valid qcow2 image: {}", file.path(), why));
}

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

// A table must be cluster-aligned, start after the header cluster, and not wrap or pass the host limit.
void check_table(const File& file, const Header& h, const char* name, std::uint64_t offset,
                 std::uint64_t bytes) {
    if (offset % h.cluster_size() != 0)
        throw corrupt(file, fmt::format("{} offset {:#x} is not aligned to the cluster size", name, offset));
    if (offset == 0 && bytes > 0)
        throw corrupt(file, fmt::format("{} overlaps the header at offset 0", name));
    if (offset >= max_host_offset || bytes > max_host_offset - offset)
        throw corrupt(file, fmt::format("{} at {:#x} with {} bytes is beyond the 2^56 host limit", name,
                                        offset, bytes));
}

std::string read_string(const std::byte* p, std::size_t size) {
    return std::string(reinterpret_cast<const char*>(p), size);
}

void parse_extensions(const File& file, Header& h, const std::vector<std::byte>& cluster, std::size_t start,
                      std::size_t end) {
    std::size_t pos = start;
    bool seen_backing_format = false, seen_feature_names = false, seen_bitmaps = false,
         seen_data_file = false;
    while (true) {
        if (pos + 8 > end)
            throw corrupt(file, "the header extension area runs past the end of the first cluster");
        std::uint32_t type = load_be32(&cluster[pos]);
        std::uint32_t length = load_be32(&cluster[pos + 4]);
        pos += 8;
        if (type == ext_end)
            return;
        if (length > end - pos)
            throw corrupt(file,
                          fmt::format("header extension {:#x} has length {} which passes the end of the "
                                      "first cluster",
                                      type, length));
        const std::byte* data = &cluster[pos];
        auto once = [&](bool& seen, const char* name) {
            if (seen)
                throw corrupt(file, fmt::format("the {} header extension appears twice", name));
            seen = true;
        };
        switch (type) {
        case ext_backing_format:
            once(seen_backing_format, "backing format");
            if (length > 1023)
                throw corrupt(file, fmt::format("backing format name has {} bytes (at most 1023)", length));
            h.backing_format = read_string(data, length);
            break;
        case ext_feature_names:
            once(seen_feature_names, "feature name table");
            for (std::size_t i = 0; i + feature_name_entry_size <= length; i += feature_name_entry_size) {
                FeatureName f;
                f.type = static_cast<std::uint8_t>(data[i]);
                f.bit = static_cast<std::uint8_t>(data[i + 1]);
                std::string name = read_string(data + i + 2, 46);
                f.name = name.substr(0, name.find('\0'));
                h.feature_names.push_back(std::move(f));
            }
            break;
        case ext_bitmaps: {
            once(seen_bitmaps, "bitmaps");
            if (length != 24)
                throw corrupt(file, fmt::format("bitmaps extension has length {} (expected 24)", length));
            BitmapsExtension b;
            b.nb_bitmaps = load_be32(data);
            if (load_be32(data + 4) != 0)
                throw corrupt(file, "bitmaps extension reserved field is not zero");
            b.directory_size = load_be64(data + 8);
            b.directory_offset = load_be64(data + 16);
            if (b.nb_bitmaps == 0 || b.nb_bitmaps > max_bitmaps)
                throw corrupt(file, fmt::format("bitmaps extension lists {} bitmaps (1..{})", b.nb_bitmaps,
                                                max_bitmaps));
            if (b.directory_size == 0 || b.directory_size > max_bitmap_directory_bytes)
                throw corrupt(file,
                              fmt::format("bitmap directory size {} is out of range", b.directory_size));
            check_table(file, h, "bitmap directory", b.directory_offset, b.directory_size);
            h.bitmaps = b;
            break;
        }
        case ext_crypto:
            h.has_crypto_extension = true;
            break;
        case ext_data_file:
            once(seen_data_file, "external data file name");
            if (length > 4096)
                throw corrupt(file, "external data file name is longer than 4096 bytes");
            h.data_file = read_string(data, length);
            break;
        default:
            h.unknown_extensions.push_back({type, std::vector<std::byte>(data, data + length)});
            break;
        }
        pos += align_up(length, 8);
        if (pos > end)
            throw corrupt(file, "the header extension area runs past the end of the first cluster");
    }
}

} // namespace

bool Header::extended_l2() const {
    return (incompatible_features & incompat_extended_l2) != 0;
}

std::string feature_name(const Header& header, std::uint8_t type, std::uint8_t bit) {
    for (const auto& f : header.feature_names)
        if (f.type == type && f.bit == bit && !f.name.empty())
            return f.name;
    static const char* const incompatible[] = {"dirty bit", "corrupt bit", "external data file",
                                               "compression type", "extended L2 entries"};
    if (type == 0 && bit < std::size(incompatible))
        return incompatible[bit];
    return fmt::format("unknown feature bit {}", bit);
}

Header read_header(const File& file, bool check_snapshot_table) {
    const std::uint64_t file_size = file.size();
    std::byte fixed[header_v3_length] = {};
    if (file_size < header_v2_length)
        throw corrupt(file, fmt::format("the file has {} bytes, fewer than a qcow2 header", file_size));
    file.read_or_zero(0, std::span(fixed, sizeof fixed));

    Header h;
    if (load_be32(fixed + field::magic) != magic)
        throw corrupt(file, "the magic number is not QFI\\xfb");
    h.version = load_be32(fixed + field::version);
    if (h.version != 2 && h.version != 3)
        throw Error(
            ErrorCode::NotSupported,
            fmt::format("'{}': qcow2 version {} is not supported (2 and 3 are)", file.path(), h.version));
    h.cluster_bits = load_be32(fixed + field::cluster_bits);
    if (h.cluster_bits < min_cluster_bits || h.cluster_bits > max_cluster_bits)
        throw corrupt(file, fmt::format("cluster_bits is {} (must be {}..{})", h.cluster_bits,
                                        min_cluster_bits, max_cluster_bits));
    const std::uint64_t cluster_size = h.cluster_size();
    h.backing_file_offset = load_be64(fixed + field::backing_file_offset);
    const std::uint32_t backing_file_size = load_be32(fixed + field::backing_file_size);
    h.size = load_be64(fixed + field::size);
    h.crypt_method = load_be32(fixed + field::crypt_method);
    h.l1_size = load_be32(fixed + field::l1_size);
    h.l1_table_offset = load_be64(fixed + field::l1_table_offset);
    h.refcount_table_offset = load_be64(fixed + field::refcount_table_offset);
    h.refcount_table_clusters = load_be32(fixed + field::refcount_table_clusters);
    h.nb_snapshots = load_be32(fixed + field::nb_snapshots);
    h.snapshots_offset = load_be64(fixed + field::snapshots_offset);

    if (h.version == 2) {
        h.header_length = header_v2_length;
        h.refcount_order = 4;
    } else {
        h.incompatible_features = load_be64(fixed + field::incompatible_features);
        h.compatible_features = load_be64(fixed + field::compatible_features);
        h.autoclear_features = load_be64(fixed + field::autoclear_features);
        h.refcount_order = load_be32(fixed + field::refcount_order);
        h.header_length = load_be32(fixed + field::header_length);
        if (h.header_length < header_v3_min_length || h.header_length % 8 != 0)
            throw corrupt(
                file, fmt::format("header_length is {} (at least 104 and a multiple of 8)", h.header_length));
        if (h.header_length > cluster_size)
            throw corrupt(file, fmt::format("header_length {} is larger than a cluster", h.header_length));
        if (h.refcount_order > 6)
            throw corrupt(file, fmt::format("refcount_order is {} (at most 6)", h.refcount_order));
    }

    // Feature bits: unknown incompatible bits are refused, unknown autoclear bits are cleared on write.
    if (std::uint64_t unknown = h.incompatible_features & ~incompat_known) {
        int bit = std::countr_zero(unknown);
        throw Error(ErrorCode::NotSupported,
                    fmt::format("'{}' uses an unsupported incompatible feature: {}", file.path(),
                                feature_name(h, 0, static_cast<std::uint8_t>(bit))));
    }
    if (h.header_length > field::compression_type) {
        h.compression_type = static_cast<std::uint8_t>(fixed[field::compression_type]);
        if (h.header_length > header_v3_length) {
            h.extra_header_fields.resize(h.header_length - header_v3_length);
            file.read_or_zero(header_v3_length, h.extra_header_fields);
        }
    }
    const bool compression_bit = (h.incompatible_features & incompat_compression) != 0;
    if (compression_bit && h.compression_type == compression_zlib)
        throw corrupt(file, "the compression type bit is set but compression_type is zlib (0)");
    if (!compression_bit && h.compression_type != compression_zlib)
        throw corrupt(file, fmt::format("compression_type is {} but the compression type bit is not set",
                                        h.compression_type));
    if (h.compression_type > compression_zstd)
        throw Error(ErrorCode::NotSupported,
                    fmt::format("'{}': unknown compression type {}", file.path(), h.compression_type));
    if (h.extended_l2() && h.cluster_bits < min_extended_l2_cluster_bits)
        throw corrupt(file, fmt::format("extended L2 entries need clusters of at least 16 KiB, not {} bytes",
                                        cluster_size));

    if (h.size > max_virtual_size)
        throw corrupt(file, fmt::format("virtual size {} is larger than the qcow2 maximum", h.size));
    if (h.crypt_method > crypt_luks)
        throw corrupt(file, fmt::format("crypt_method is {} (0, 1 or 2)", h.crypt_method));

    // L1 table: big enough for the virtual size, under the 32 MiB limit, aligned, not over the header.
    const std::uint64_t l2_span = h.l2_entries() * cluster_size;
    const std::uint64_t l1_needed = (h.size + l2_span - 1) / l2_span;
    if (static_cast<std::uint64_t>(h.l1_size) * 8 > max_l1_table_bytes)
        throw corrupt(
            file, fmt::format("L1 table has {} entries (at most {} bytes)", h.l1_size, max_l1_table_bytes));
    if (h.l1_size < l1_needed)
        throw corrupt(file, fmt::format("L1 table has {} entries, too few for the virtual size {} (needs {})",
                                        h.l1_size, h.size, l1_needed));
    check_table(file, h, "L1 table", h.l1_table_offset, std::uint64_t{h.l1_size} * 8);

    // Refcount table.
    const std::uint64_t refcount_table_bytes = std::uint64_t{h.refcount_table_clusters} * cluster_size;
    if (h.refcount_table_clusters == 0)
        throw corrupt(file, "the refcount table has no clusters");
    if (refcount_table_bytes > max_refcount_table_bytes)
        throw corrupt(file, fmt::format("refcount table has {} clusters (at most {} bytes)",
                                        h.refcount_table_clusters, max_refcount_table_bytes));
    check_table(file, h, "refcount table", h.refcount_table_offset, refcount_table_bytes);

    // Snapshot table: its entries are validated when it is read.
    if (check_snapshot_table && h.nb_snapshots > max_snapshots)
        throw corrupt(file, fmt::format("{} snapshots (at most {})", h.nb_snapshots, max_snapshots));
    if (check_snapshot_table && h.nb_snapshots > 0)
        check_table(file, h, "snapshot table", h.snapshots_offset, std::uint64_t{h.nb_snapshots} * 40);

    // Header extensions live in the rest of the first cluster, before the backing file name.
    std::size_t area_end = cluster_size;
    if (h.backing_file_offset != 0) {
        if (backing_file_size > max_backing_name || backing_file_size == 0)
            throw corrupt(file, fmt::format("backing file name has {} bytes (1..{})", backing_file_size,
                                            max_backing_name));
        if (h.backing_file_offset > cluster_size || backing_file_size > cluster_size - h.backing_file_offset)
            throw corrupt(file, "the backing file name does not lie inside the first cluster");
        if (h.backing_file_offset < h.header_length)
            throw corrupt(file, "the backing file name overlaps the header");
        area_end = h.backing_file_offset;
    }
    std::vector<std::byte> cluster(cluster_size);
    file.read_or_zero(0, cluster);
    if (h.backing_file_offset != 0)
        h.backing_file = read_string(&cluster[h.backing_file_offset], backing_file_size);
    // QEMU reads (and writes) header extensions for version 2 images too.
    parse_extensions(file, h, cluster, h.header_length, area_end);

    if (h.crypt_method != crypt_none)
        throw Error(ErrorCode::NotSupported,
                    fmt::format("'{}' is encrypted ({}); encryption is not supported yet", file.path(),
                                h.crypt_method == crypt_luks ? "LUKS" : "AES"));
    if (h.has_crypto_extension)
        throw corrupt(file, "a full disk encryption header extension is present without encryption");
    if ((h.autoclear_features & autoclear_bitmaps) && !h.bitmaps)
        h.autoclear_features &= ~autoclear_bitmaps; // QEMU clears a bitmaps bit without the extension too
    if ((h.autoclear_features & autoclear_data_file_raw) && !(h.incompatible_features & incompat_data_file))
        throw corrupt(file, "the raw external data bit is set without an external data file");
    if (h.data_file && !(h.incompatible_features & incompat_data_file))
        throw corrupt(file, "an external data file name is present but the external data file bit is clear");
    return h;
}

std::vector<std::byte> encode_header(const Header& h) {
    std::vector<std::byte> out(h.version == 2 ? header_v2_length : h.header_length);
    std::byte* p = out.data();
    store_be<std::uint32_t>(p + field::magic, magic);
    store_be<std::uint32_t>(p + field::version, h.version);
    store_be<std::uint32_t>(p + field::cluster_bits, h.cluster_bits);
    store_be<std::uint64_t>(p + field::size, h.size);
    store_be<std::uint32_t>(p + field::crypt_method, h.crypt_method);
    store_be<std::uint32_t>(p + field::l1_size, h.l1_size);
    store_be<std::uint64_t>(p + field::l1_table_offset, h.l1_table_offset);
    store_be<std::uint64_t>(p + field::refcount_table_offset, h.refcount_table_offset);
    store_be<std::uint32_t>(p + field::refcount_table_clusters, h.refcount_table_clusters);
    store_be<std::uint32_t>(p + field::nb_snapshots, h.nb_snapshots);
    store_be<std::uint64_t>(p + field::snapshots_offset, h.snapshots_offset);
    if (h.version >= 3) {
        store_be<std::uint64_t>(p + field::incompatible_features, h.incompatible_features);
        store_be<std::uint64_t>(p + field::compatible_features, h.compatible_features);
        store_be<std::uint64_t>(p + field::autoclear_features, h.autoclear_features);
        store_be<std::uint32_t>(p + field::refcount_order, h.refcount_order);
        store_be<std::uint32_t>(p + field::header_length, h.header_length);
        if (h.header_length > field::compression_type)
            p[field::compression_type] = std::byte{h.compression_type};
        if (h.header_length > header_v3_length)
            std::copy(h.extra_header_fields.begin(), h.extra_header_fields.end(),
                      out.begin() + header_v3_length);

        auto add_extension = [&](std::uint32_t type, const void* data, std::size_t length) {
            std::size_t pos = out.size();
            out.resize(pos + 8 + align_up(length, 8));
            store_be<std::uint32_t>(&out[pos], type);
            store_be<std::uint32_t>(&out[pos + 4], static_cast<std::uint32_t>(length));
            if (length)
                std::memcpy(&out[pos + 8], data, length);
        };
        if (h.backing_format)
            add_extension(ext_backing_format, h.backing_format->data(), h.backing_format->size());
        if (h.data_file)
            add_extension(ext_data_file, h.data_file->data(), h.data_file->size());
        if (!h.feature_names.empty()) {
            std::vector<std::byte> table(h.feature_names.size() * feature_name_entry_size);
            for (std::size_t i = 0; i < h.feature_names.size(); ++i) {
                std::byte* e = &table[i * feature_name_entry_size];
                e[0] = std::byte{h.feature_names[i].type};
                e[1] = std::byte{h.feature_names[i].bit};
                std::memcpy(e + 2, h.feature_names[i].name.data(),
                            std::min<std::size_t>(46, h.feature_names[i].name.size()));
            }
            add_extension(ext_feature_names, table.data(), table.size());
        }
        if (h.bitmaps) {
            std::byte b[24] = {};
            store_be<std::uint32_t>(b, h.bitmaps->nb_bitmaps);
            store_be<std::uint64_t>(b + 8, h.bitmaps->directory_size);
            store_be<std::uint64_t>(b + 16, h.bitmaps->directory_offset);
            add_extension(ext_bitmaps, b, sizeof b);
        }
        for (const auto& e : h.unknown_extensions)
            add_extension(e.type, e.data.data(), e.data.size());
        add_extension(ext_end, nullptr, 0);
    }
    if (!h.backing_file.empty()) {
        std::size_t pos = out.size();
        out.resize(pos + h.backing_file.size());
        std::memcpy(&out[pos], h.backing_file.data(), h.backing_file.size());
        p = out.data(); // the resize moved the buffer
        store_be<std::uint64_t>(p + field::backing_file_offset, pos);
        store_be<std::uint32_t>(p + field::backing_file_size,
                                static_cast<std::uint32_t>(h.backing_file.size()));
    }
    if (out.size() > h.cluster_size())
        throw Error(ErrorCode::InvalidArgument, "the header, its extensions and the backing file name do not "
                                                "fit in one cluster");
    return out;
}

} // namespace vmstor::qcow2
