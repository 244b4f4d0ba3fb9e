// Owning handles for libvirt objects: every pointer libvirt hands out is freed exactly once.
#pragma once

#include <libvirt/libvirt.h>
#include <memory>
#include <vector>

namespace vmstor::virt {

struct ConnectDeleter {
    void operator()(virConnectPtr conn) const noexcept { virConnectClose(conn); }
};
struct PoolDeleter {
    void operator()(virStoragePoolPtr pool) const noexcept { virStoragePoolFree(pool); }
};
struct VolumeDeleter {
    void operator()(virStorageVolPtr vol) const noexcept { virStorageVolFree(vol); }
};
struct DomainDeleter {
    void operator()(virDomainPtr domain) const noexcept { virDomainFree(domain); }
};
/// @brief For strings libvirt allocates and the caller frees (XML descriptions, paths).
struct CStringDeleter {
    void operator()(char* text) const noexcept { free(text); }
};

using ConnectHandle = std::unique_ptr<virConnect, ConnectDeleter>;
using PoolHandle = std::unique_ptr<virStoragePool, PoolDeleter>;
using VolumeHandle = std::unique_ptr<virStorageVol, VolumeDeleter>;
using DomainHandle = std::unique_ptr<virDomain, DomainDeleter>;
using CString = std::unique_ptr<char, CStringDeleter>;

/// @brief Takes element-wise ownership of an array that virConnectListAll* returned, then frees the array.
template <typename Handle, typename Raw> std::vector<Handle> adopt_array(Raw* items, int count) {
    std::vector<Handle> out;
    if (!items)
        return out;
    out.reserve(count > 0 ? static_cast<std::size_t>(count) : 0);
    for (int i = 0; i < count; ++i)
        out.emplace_back(items[i]);
    free(items);
    return out;
}

} // namespace vmstor::virt
