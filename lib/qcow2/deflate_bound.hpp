// A proof, cheaper than deflate itself, that a cluster cannot be compressed: random-looking data
// (already compressed or encrypted files, media) is written uncompressed without running deflate.
#pragma once

#include <cstddef>
#include <span>

namespace vmstor::qcow2 {

/// @brief True only if deflate, run as compress_cluster runs it for zlib images (zlib level 6, 4 KiB
/// window, memLevel 9: a block every 32767 symbols), cannot turn `in` into fewer than `limit` bytes;
/// false when that is not certain (then deflate decides). Clusters over 64 KiB always get false.
///
/// The lower bound it proves: a byte that no match of 3 or more bytes within 4 KiB can cover is a
/// literal, and a block's literals cost at least their empirical entropy (Kraft's inequality), whatever
/// code deflate picks (stored, fixed or dynamic). Blocks end where deflate ends them, somewhere past
/// byte 32767; every place is tried, at a 256-byte grain that only lowers the bound.
bool deflate_cannot_shrink(std::span<const std::byte> in, std::size_t limit);

/// @brief The limit compress_cluster proves against when the compressed form must be under `fits_under`
/// bytes: a sector less (an eighth for clusters under 4 KiB). Deflating a cluster to save less than that
/// is not worth its time, and only such a limit can be proven for random data: the entropy of its
/// literals falls a few hundred bits short of 8 per byte, so a proof against the cluster size itself
/// never succeeds.
constexpr std::size_t deflate_proof_limit(std::size_t fits_under) {
    const std::size_t slack = fits_under / 8 < 512 ? fits_under / 8 : 512;
    return fits_under - slack;
}

} // namespace vmstor::qcow2
