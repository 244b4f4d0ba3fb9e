// Compressed clusters: zlib as QEMU writes it (raw deflate, 4 KiB window) and zstd frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vmstor::qcow2 {

enum class CompressionType : std::uint8_t { Zlib = 0, Zstd = 1 };

/// @brief Decompresses one cluster; `in` may carry trailing bytes of the last sector. Returns false if
/// the data is not a valid stream that fills `out` exactly.
bool decompress_cluster(CompressionType type, std::span<const std::byte> in, std::span<std::byte> out);

/// @brief The most bytes a compressed cluster may take: QEMU compresses into cluster − 1 bytes and writes
/// the cluster uncompressed when the result does not fit.
constexpr std::size_t max_compressed_size(std::uint64_t cluster_size) {
    return static_cast<std::size_t>(cluster_size - 1);
}

/// @brief Compresses one cluster into `out`; returns the compressed size, or 0 when the result does
/// not fit in out.size() bytes (the caller then writes the cluster uncompressed, as QEMU does).
std::size_t compress_cluster(CompressionType type, std::span<const std::byte> in, std::span<std::byte> out);

} // namespace vmstor::qcow2
