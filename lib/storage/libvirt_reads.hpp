// Reading the model's state out of libvirt handles.
#pragma once

#include "model.hpp"
#include "virt/handles.hpp"

namespace vmstor::storage {

PoolState read_pool_state(virStoragePoolPtr pool);
VolumeState read_volume_state(const std::string& pool_name, virStorageVolPtr volume);

} // namespace vmstor::storage
