// Volume.Map's answer written straight into the reply message: one a{sv} per extent, without an
// sdbus::Variant (each its own sd_bus_message) per field.
#pragma once

#include "storage/image_jobs.hpp"

#include <cstddef>
#include <sdbus-c++/Message.h>
#include <vector>

namespace vmstor::daemon {

/// The most extents one Volume.Map answers (part of the D-Bus contract): a longer map is read in pages,
/// each continued from the end of the last extent of the one before.
inline constexpr std::size_t max_map_extents = 65536;

struct MapReply {
    std::vector<storage::MapExtent> extents;
};

/// @brief Appends `reply` as aa{sv} (keys as qemu-img map --output=json names them).
sdbus::Message& operator<<(sdbus::Message& message, const MapReply& reply);

} // namespace vmstor::daemon
