// JSON exactly as qemu-img prints it: QEMU's QDict iterates its 512 hash buckets in order (newest
// entry first within a bucket), so the key order depends on the key names; 4-space indentation.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace vmstor::img {

using Json = nlohmann::ordered_json;

/// @brief Prints `value` with objects' keys in QEMU's QDict order (keys in insertion order in `value`).
std::string qemu_json(const Json& value);

} // namespace vmstor::img
