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

/// @brief Compresses one cluster into `out`; returns the compressed size, or 0 when the result would
/// not be smaller than out.size() (the caller then writes the cluster uncompressed, as QEMU does).
std::size_t compress_cluster(CompressionType type, std::span<const std::byte> in, std::span<std::byte> out);

} // namespace vmstor::qcow2
