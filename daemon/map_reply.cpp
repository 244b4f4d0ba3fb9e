#include "map_reply.hpp"

#include "common/error.hpp"
#include "raw_bus.hpp"

#include <cstring>
#include <fmt/format.h>

namespace vmstor::daemon {

sdbus::Message& operator<<(sdbus::Message& message, const MapReply& reply) {
    sd_bus_message* m = raw_message(message);
    int r = sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "a{sv}");
    for (const storage::MapExtent& e : reply.extents) {
        if (r < 0)
            break;
        const std::uint64_t start = e.start, length = e.length;
        const std::int32_t depth = e.depth;
        const int present = e.present, zero = e.zero, data = e.data, compressed = e.compressed;
        if (e.offset)
            r = sd_bus_message_append(m, "a{sv}", 8, "start", "t", start, "length", "t", length, "depth", "i",
                                      depth, "present", "b", present, "zero", "b", zero, "data", "b", data,
                                      "compressed", "b", compressed, "offset", "t", std::uint64_t{*e.offset});
        else
            r = sd_bus_message_append(m, "a{sv}", 7, "start", "t", start, "length", "t", length, "depth", "i",
                                      depth, "present", "b", present, "zero", "b", zero, "data", "b", data,
                                      "compressed", "b", compressed);
    }
    if (r >= 0)
        r = sd_bus_message_close_container(m);
    if (r < 0)
        throw vmstor::Error(ErrorCode::Failed,
                            fmt::format("cannot write the map into its reply: {}", std::strerror(-r)));
    return message;
}

} // namespace vmstor::daemon
