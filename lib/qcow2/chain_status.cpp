#include "chain_status.hpp"

namespace vmstor::qcow2 {

ChainStatus chain_block_status(Image& top, std::uint64_t offset, std::uint64_t length) {
    ChainStatus result;
    Image* layer = &top;
    int depth = 0;
    while (true) {
        // A layer reports no further than its own end.
        const std::uint64_t bytes = std::min(length, layer->virtual_size() - offset);
        BlockStatus s = layer->block_status(offset, bytes);
        result.length = s.length;
        result.depth = depth;
        result.present = s.allocated;
        result.zero = s.zero;
        result.data = s.data;
        result.compressed = s.compressed;
        result.offset = s.host_offset;
        result.file = s.host_offset ? layer : nullptr;
        if (s.allocated)
            return result;
        Image* below = layer->backing();
        // Past the backing file's end (or without one) the range reads as zeroes, decided here.
        if (!below || offset >= below->virtual_size()) {
            result.zero = true;
            return result;
        }
        length = s.length;
        layer = below;
        ++depth;
    }
}

} // namespace vmstor::qcow2
