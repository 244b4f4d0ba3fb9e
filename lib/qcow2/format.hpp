// The qcow2 on-disk format (QEMU's docs/interop/qcow2.txt): constants named as in the spec, the
// header layout, feature bits with the masks of the bits we know, and big-endian helpers.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vmstor::qcow2::format {

// --- Big-endian access at the boundary: everything on disk is big-endian. ---
template <typename T> constexpr T byte_swap(T value) { // std::byteswap is C++23
    if constexpr (sizeof(T) == 2)
        return static_cast<T>(__builtin_bswap16(value));
    else if constexpr (sizeof(T) == 4)
        return static_cast<T>(__builtin_bswap32(value));
    else if constexpr (sizeof(T) == 8)
        return static_cast<T>(__builtin_bswap64(value));
    else
        return value;
}
template <typename T> T load_be(const std::byte* p) {
    T value;
    std::memcpy(&value, p, sizeof value);
    if constexpr (std::endian::native == std::endian::little && sizeof(T) > 1)
        value = byte_swap(value);
    return value;
}
template <typename T> void store_be(std::byte* p, T value) {
    if constexpr (std::endian::native == std::endian::little && sizeof(T) > 1)
        value = byte_swap(value);
    std::memcpy(p, &value, sizeof value);
}
inline std::uint64_t load_be64(const std::byte* p) {
    return load_be<std::uint64_t>(p);
}
inline std::uint32_t load_be32(const std::byte* p) {
    return load_be<std::uint32_t>(p);
}
inline std::uint16_t load_be16(const std::byte* p) {
    return load_be<std::uint16_t>(p);
}

// --- Header ---
inline constexpr std::uint32_t magic = 0x514649fb; // "QFI\xfb"
inline constexpr std::size_t header_v2_length = 72;
inline constexpr std::size_t header_v3_min_length = 104;
inline constexpr std::size_t header_v3_length = 112; // with compression_type and its padding

// Byte offsets of the header fields.
namespace field {
inline constexpr std::size_t magic = 0;
inline constexpr std::size_t version = 4;
inline constexpr std::size_t backing_file_offset = 8;
inline constexpr std::size_t backing_file_size = 16;
inline constexpr std::size_t cluster_bits = 20;
inline constexpr std::size_t size = 24;
inline constexpr std::size_t crypt_method = 32;
inline constexpr std::size_t l1_size = 36;
inline constexpr std::size_t l1_table_offset = 40;
inline constexpr std::size_t refcount_table_offset = 48;
inline constexpr std::size_t refcount_table_clusters = 56;
inline constexpr std::size_t nb_snapshots = 60;
inline constexpr std::size_t snapshots_offset = 64;
inline constexpr std::size_t incompatible_features = 72;
inline constexpr std::size_t compatible_features = 80;
inline constexpr std::size_t autoclear_features = 88;
inline constexpr std::size_t refcount_order = 96;
inline constexpr std::size_t header_length = 100;
inline constexpr std::size_t compression_type = 104;
} // namespace field

// Incompatible feature bits.
inline constexpr std::uint64_t incompat_dirty = 1ull << 0;
inline constexpr std::uint64_t incompat_corrupt = 1ull << 1;
inline constexpr std::uint64_t incompat_data_file = 1ull << 2;
inline constexpr std::uint64_t incompat_compression = 1ull << 3;
inline constexpr std::uint64_t incompat_extended_l2 = 1ull << 4;
inline constexpr std::uint64_t incompat_known = (1ull << 5) - 1;
// Compatible feature bits.
inline constexpr std::uint64_t compat_lazy_refcounts = 1ull << 0;
// Autoclear feature bits.
inline constexpr std::uint64_t autoclear_bitmaps = 1ull << 0;
inline constexpr std::uint64_t autoclear_data_file_raw = 1ull << 1;
inline constexpr std::uint64_t autoclear_known = (1ull << 2) - 1;

inline constexpr std::uint32_t crypt_none = 0;
inline constexpr std::uint32_t crypt_aes = 1;
inline constexpr std::uint32_t crypt_luks = 2;

inline constexpr std::uint8_t compression_zlib = 0;
inline constexpr std::uint8_t compression_zstd = 1;

// --- Header extensions ---
inline constexpr std::uint32_t ext_end = 0x00000000;
inline constexpr std::uint32_t ext_backing_format = 0xe2792aca;
inline constexpr std::uint32_t ext_feature_names = 0x6803f857;
inline constexpr std::uint32_t ext_bitmaps = 0x23852875;
inline constexpr std::uint32_t ext_crypto = 0x0537be77;
inline constexpr std::uint32_t ext_data_file = 0x44415441;
inline constexpr std::size_t feature_name_entry_size = 48;

// --- Tables ---
inline constexpr std::uint64_t l1e_offset_mask = 0x00fffffffffffe00ull;
inline constexpr std::uint64_t l1e_reserved_mask = 0x7f000000000001ffull;
inline constexpr std::uint64_t l2e_offset_mask = 0x00fffffffffffe00ull;
inline constexpr std::uint64_t l2e_std_reserved_mask = 0x3f000000000001feull;
inline constexpr std::uint64_t refcount_table_offset_mask = 0xfffffffffffffe00ull;
inline constexpr std::uint64_t refcount_table_reserved_mask = 0x1ffull;

inline constexpr std::uint64_t oflag_copied = 1ull << 63;
inline constexpr std::uint64_t oflag_compressed = 1ull << 62;
inline constexpr std::uint64_t oflag_zero = 1ull << 0;

inline constexpr unsigned subclusters_per_cluster = 32;
inline constexpr std::uint32_t subcluster_alloc_mask = 0xffffffffu;

// --- Limits (as strict as QEMU's) ---
inline constexpr unsigned min_cluster_bits = 9;
inline constexpr unsigned max_cluster_bits = 21;
inline constexpr unsigned min_extended_l2_cluster_bits = 14;
inline constexpr std::uint64_t max_l1_table_bytes = 32ull << 20;
inline constexpr std::uint64_t max_refcount_table_bytes = 8ull << 20;
inline constexpr std::uint32_t max_snapshots = 65536;
inline constexpr std::uint64_t max_snapshot_table_bytes = 64ull << 20;
inline constexpr std::uint32_t max_snapshot_extra_data = 1024;
inline constexpr std::uint64_t max_host_offset = 1ull << 56;
inline constexpr std::uint32_t max_backing_name = 1023;
inline constexpr std::uint32_t max_header_extension_bytes = 1u << 20;
inline constexpr std::uint32_t max_bitmaps = 65535;
inline constexpr std::uint64_t max_bitmap_directory_bytes = 64ull << 20;
inline constexpr std::uint64_t max_virtual_size = 1ull << 61; // QEMU's QCOW_MAX_... for 2 MiB clusters

// Snapshot table entry: the fixed part is 40 bytes; v3 requires 16 bytes of extra data.
inline constexpr std::size_t snapshot_fixed_size = 40;
inline constexpr std::size_t snapshot_v3_min_extra = 16;

inline constexpr std::uint64_t sector_size = 512;

/// @brief Refcount `index` of a refcount block whose entries are 2^order bits (sub-byte: bit 0 is the LSB).
inline std::uint64_t load_refcount_entry(const std::byte* block, std::uint64_t index, unsigned order) {
    switch (order) {
    case 0:
    case 1:
    case 2: {
        const unsigned width = 1u << order;
        const unsigned per_byte = 8 / width;
        const auto byte = std::to_integer<unsigned>(block[index / per_byte]);
        return (byte >> (width * (index % per_byte))) & ((1u << width) - 1);
    }
    case 3:
        return std::to_integer<unsigned>(block[index]);
    case 4:
        return load_be16(block + index * 2);
    case 5:
        return load_be32(block + index * 4);
    default:
        return load_be64(block + index * 8);
    }
}

inline void store_refcount_entry(std::byte* block, std::uint64_t index, unsigned order, std::uint64_t value) {
    switch (order) {
    case 0:
    case 1:
    case 2: {
        const unsigned width = 1u << order;
        const unsigned per_byte = 8 / width;
        const unsigned shift = width * (index % per_byte);
        const unsigned mask = ((1u << width) - 1) << shift;
        auto byte = std::to_integer<unsigned>(block[index / per_byte]);
        byte = (byte & ~mask) | ((static_cast<unsigned>(value) << shift) & mask);
        block[index / per_byte] = static_cast<std::byte>(byte);
        return;
    }
    case 3:
        block[index] = static_cast<std::byte>(value);
        return;
    case 4:
        store_be<std::uint16_t>(block + index * 2, static_cast<std::uint16_t>(value));
        return;
    case 5:
        store_be<std::uint32_t>(block + index * 4, static_cast<std::uint32_t>(value));
        return;
    default:
        store_be<std::uint64_t>(block + index * 8, value);
        return;
    }
}

} // namespace vmstor::qcow2::format
