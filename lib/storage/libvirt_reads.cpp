#include "libvirt_reads.hpp"

#include "backing_chain.hpp"

#include "virt/errors.hpp"

#include <fmt/format.h>
#include <sys/statvfs.h>

namespace vmstor::storage {

namespace {

std::string_view pool_state_name(int state) {
    switch (state) {
    case VIR_STORAGE_POOL_INACTIVE:
        return "inactive";
    case VIR_STORAGE_POOL_BUILDING:
        return "building";
    case VIR_STORAGE_POOL_RUNNING:
        return "running";
    case VIR_STORAGE_POOL_DEGRADED:
        return "degraded";
    case VIR_STORAGE_POOL_INACCESSIBLE:
        return "inaccessible";
    default:
        return "inaccessible";
    }
}

std::uint64_t kept_back_bytes(const PoolState& pool) {
    if (!pool.active || (pool.type != "dir" && pool.type != "fs" && pool.type != "netfs"))
        return 0;
    struct statvfs fs {};
    if (pool.target_path.empty() || ::statvfs(pool.target_path.c_str(), &fs) != 0)
        return 0;
    return std::uint64_t{fs.f_bfree - fs.f_bavail} * fs.f_frsize;
}

} // namespace

PoolState read_pool_state(virStoragePoolPtr pool) {
    PoolState state;
    const char* name = virStoragePoolGetName(pool);
    state.name = name ? name : "";
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virStoragePoolGetUUIDString(pool, uuid) < 0)
        throw virt::last_error(fmt::format("cannot read the UUID of pool '{}'", state.name));
    state.uuid = uuid;

    virStoragePoolInfo info{};
    if (virStoragePoolGetInfo(pool, &info) < 0)
        throw virt::last_error(fmt::format("cannot read pool '{}'", state.name));
    state.state = pool_state_name(info.state);
    state.capacity = info.capacity;
    state.allocation = info.allocation;
    state.available = info.available;

    int active = virStoragePoolIsActive(pool);
    int persistent = virStoragePoolIsPersistent(pool);
    int autostart = 0;
    if (active < 0 || persistent < 0 || virStoragePoolGetAutostart(pool, &autostart) < 0)
        throw virt::last_error(fmt::format("cannot read the state of pool '{}'", state.name));
    state.active = active == 1;
    state.persistent = persistent == 1;
    state.autostart = autostart == 1;

    virt::CString xml(virStoragePoolGetXMLDesc(pool, 0));
    if (!xml)
        throw virt::last_error(fmt::format("cannot read the XML of pool '{}'", state.name));
    virt::PoolDescription description = virt::parse_pool_xml(xml.get());
    state.type = description.type;
    state.target_path = description.target_path;
    state.source = description.source;
    state.kept_back = kept_back_bytes(state);
    return state;
}

VolumeState read_volume_state(const std::string& pool_name, virStorageVolPtr volume) {
    VolumeState state;
    state.pool = pool_name;
    const char* name = virStorageVolGetName(volume);
    state.name = name ? name : "";
    // One round trip: the XML carries sizes, key, path, format and backing store.
    virt::CString xml(virStorageVolGetXMLDesc(volume, 0));
    if (!xml)
        throw virt::last_error(fmt::format("cannot read volume '{}' in pool '{}'", state.name, pool_name));
    virt::VolumeDescription description = virt::parse_volume_xml(xml.get());
    state.key = description.key;
    state.path = description.path;
    state.capacity = description.capacity;
    state.allocation = description.allocation;
    state.physical = description.physical;
    state.format = description.format;
    state.backing_chain = description.backing_chain;
    if (!state.backing_chain.empty())
        state.backing_chain =
            read_backing_chain(state.backing_chain.front().first, state.backing_chain.front().second);
    state.encrypted = description.encrypted;
    return state;
}

} // namespace vmstor::storage
