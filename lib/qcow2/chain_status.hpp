// Block status through a backing chain, as qemu-img map and convert see it.
#pragma once

#include "image.hpp"

#include <functional>

namespace vmstor::qcow2 {

struct ChainStatus {
    std::uint64_t length = 0;
    int depth = 0;        // the layer that decided (or the deepest one looked at)
    bool present = false; // some layer allocates it
    bool zero = false;
    bool data = false;
    bool compressed = false;
    std::optional<std::uint64_t> offset; // host offset in `file`'s image
    Image* file = nullptr;
};

/// @brief The status of [offset, offset+length) of the chain starting at `top`, for at most length bytes.
ChainStatus chain_block_status(Image& top, std::uint64_t offset, std::uint64_t length);

/// @brief One extent of qemu-img map: a run of guest bytes from `start` with one status.
struct MapExtent {
    std::uint64_t start = 0;
    ChainStatus status;
};

/// @brief Walks the whole image as qemu-img map does, merging neighbouring ranges of equal status.
void for_each_map_extent(Image& top, const std::function<void(const MapExtent&)>& visit);

/// @brief Walks [offset, offset + length) (clipped at the image's end) as qemu-img map --start-offset
/// --max-length does, until `visit` returns false. Every extent visited but the last of the range is
/// whole: the next one has another status.
void for_each_map_extent(Image& top, std::uint64_t offset, std::uint64_t length,
                         const std::function<bool(const MapExtent&)>& visit);

} // namespace vmstor::qcow2
