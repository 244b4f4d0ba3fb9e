// `qemu-img info --output=json` of an image, from the engine's ImageInfo: shared by vmstor-img and the
// daemon's Volume.Info.
#pragma once

#include "qcow2/image.hpp"
#include "qemu_json.hpp"

namespace vmstor::img {

/// @brief The fields of qemu-img info's JSON, keys in insertion order for qemu_json().
Json info_json(const qcow2::ImageInfo& info);

} // namespace vmstor::img
