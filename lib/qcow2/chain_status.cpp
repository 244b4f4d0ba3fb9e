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

void for_each_map_extent(Image& top, std::uint64_t offset, std::uint64_t length,
                         const std::function<bool(const MapExtent&)>& visit) {
    const std::uint64_t size = top.virtual_size();
    const std::uint64_t end = offset >= size ? offset : offset + std::min(length, size - offset);
    auto mergeable = [](const MapExtent& a, const ChainStatus& b) {
        return a.status.zero == b.zero && a.status.data == b.data && a.status.depth == b.depth &&
               a.status.present == b.present && a.status.file == b.file &&
               a.status.offset.has_value() == b.offset.has_value() &&
               (!a.status.offset || *a.status.offset + a.status.length == *b.offset);
    };
    std::optional<MapExtent> current;
    for (std::uint64_t at = offset; at < end;) {
        ChainStatus status = chain_block_status(top, at, std::min<std::uint64_t>(end - at, 1ull << 30));
        if (current && mergeable(*current, status)) {
            current->status.length += status.length;
        } else {
            if (current && !visit(*current))
                return;
            current = MapExtent{at, status};
        }
        at += status.length;
    }
    if (current)
        visit(*current);
}

void for_each_map_extent(Image& top, const std::function<void(const MapExtent&)>& visit) {
    for_each_map_extent(top, 0, top.virtual_size(), [&](const MapExtent& extent) {
        visit(extent);
        return true;
    });
}

} // namespace vmstor::qcow2
