// What CreateVolume asks for, as plain values (the daemon reads them from the D-Bus options).
#pragma once

#include "virt/descriptions.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace vmstor::storage {

struct CreateVolumeRequest {
    std::string pool;
    std::string name;
    std::uint64_t capacity = 0;
    std::string format = "qcow2";
    std::string preallocation = "off";
    std::string compat; ///< empty: 1.1
    bool lazy_refcounts = false;
    std::optional<std::uint64_t> cluster_size;
    bool extended_l2 = false;
    std::string compression_type; ///< empty: zlib
    std::string backing_path;
    std::string backing_format;
    virt::Permissions permissions;
};

} // namespace vmstor::storage
