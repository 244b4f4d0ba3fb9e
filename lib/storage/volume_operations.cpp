// Volume operations through libvirt. Arguments are checked before anything is done, so a refused call
// changes nothing.
#include "common/names.hpp"
#include "common/size.hpp"
#include "image_jobs.hpp"
#include "libvirt_reads.hpp"
#include "service.hpp"
#include "virt/errors.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vmstor::storage {

namespace {

// off_t for raw files; for qcow2, what an L1 table of QEMU's 32 MiB limit can map with 64 KiB clusters.
constexpr std::uint64_t max_raw_capacity = (1ULL << 63) - 1;
constexpr std::uint64_t max_qcow2_capacity = 1ULL << 51;

/// @brief Pools whose volumes are block devices of this host (vmstord writes them through their path).
bool holds_local_devices(const std::string& type) {
    return type == "disk" || type == "logical" || type == "iscsi" || type == "scsi" || type == "mpath" ||
           type == "zfs";
}

vmstor::Error new_volume_refusal(ErrorCode code, const std::string& pool, const std::string& name,
                                 const std::string& why) {
    return vmstor::Error(code, fmt::format("cannot create volume '{}' in pool '{}': {}", name, pool, why));
}

} // namespace

bool StorageService::writes_files(const std::string& pool_name) const {
    const PoolState& state = pool(pool_name);
    return state.type == "dir" || state.type == "fs" || state.type == "netfs";
}

VolumeImage StorageService::image_of(const VolumeState& volume) const {
    return {volume.path, data_format(volume), writes_files(volume.pool)};
}

std::string StorageService::data_format(const VolumeState& volume) const {
    if (writes_files(volume.pool) || volume.format == "qcow2")
        return volume.format;
    return "raw";
}

void StorageService::check_volume_request(const CreateVolumeRequest& request) const {
    validate_name("volume", request.name);
    const PoolState& state = pool(request.pool);
    auto refuse = [&](ErrorCode code, const std::string& why) {
        return vmstor::Error(
            code, fmt::format("cannot create volume '{}' in pool '{}': {}", request.name, request.pool, why));
    };
    if (volumes(request.pool).contains(request.name))
        throw refuse(ErrorCode::AlreadyExists, "it exists");
    if (!state.active)
        throw refuse(ErrorCode::InvalidArgument, "the pool is not running; start it first");
    if (request.format != "raw" && request.format != "qcow2")
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("format '{}' is not one of raw, qcow2", request.format));
    bool qcow2 = request.format == "qcow2";
    if (request.capacity == 0)
        throw refuse(ErrorCode::InvalidArgument, "the capacity is 0 bytes");
    std::uint64_t limit = qcow2 ? max_qcow2_capacity : max_raw_capacity;
    if (request.capacity > limit)
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("a capacity of {} bytes is above the largest {} volume ({})",
                                 request.capacity, request.format, format_size(limit)));
    const std::string& prealloc = request.preallocation;
    if (prealloc != "off" && prealloc != "metadata" && prealloc != "falloc" && prealloc != "full")
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("preallocation '{}' is not one of off, metadata, falloc, full", prealloc));
    if (prealloc == "metadata" && !qcow2)
        throw refuse(ErrorCode::InvalidArgument, "preallocation 'metadata' needs format qcow2");
    if ((prealloc == "falloc" || prealloc == "full") && request.capacity > state.available)
        throw refuse(ErrorCode::NoSpace,
                     fmt::format("preallocating {} needs more than the {} the pool has free",
                                 format_size(request.capacity), format_size(state.available)));
    if (!request.compat.empty() && request.compat != "0.10" && request.compat != "1.1")
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("compat '{}' is not one of 0.10, 1.1", request.compat));
    if (!qcow2 && (!request.compat.empty() || request.lazy_refcounts || !request.backing_path.empty() ||
                   request.cluster_size || request.extended_l2 || !request.compression_type.empty()))
        throw refuse(ErrorCode::InvalidArgument, "compat, lazy_refcounts, cluster_size, extended_l2, "
                                                 "compression_type and backing need format qcow2");
    if ((request.lazy_refcounts || request.extended_l2 || request.compression_type == "zstd") &&
        request.compat == "0.10")
        throw refuse(ErrorCode::InvalidArgument,
                     "lazy_refcounts, extended_l2 and zstd compression need compat 1.1");
    if (auto size = request.cluster_size;
        size && (*size < 512 || *size > (2u << 20) || (*size & (*size - 1))))
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("cluster_size {} is not a power of two from 512 to 2 MiB", *size));
    if (!request.compression_type.empty() && request.compression_type != "zlib" &&
        request.compression_type != "zstd")
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("compression_type '{}' is not one of zlib, zstd", request.compression_type));
    if (!request.backing_format.empty() && request.backing_path.empty())
        throw refuse(ErrorCode::InvalidArgument, "backing_format is given without backing");
    if (auto mode = request.permissions.mode; mode && (*mode & ~07777u))
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("mode {:o} is not a file mode (0 to 0777)", *mode));
    if (auto mode = request.permissions.mode; mode && (*mode & 07000u))
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("mode {:04o} has setuid, setgid or sticky bits; volume files never carry "
                                 "them (use a mode of 0777 or less)",
                                 *mode));
    if (!request.backing_path.empty() && request.backing_format.empty())
        throw refuse(ErrorCode::InvalidArgument,
                     "backing needs backing_format: probing the format of a backing file is unsafe");
    if (!request.backing_format.empty() && request.backing_format != "raw" &&
        request.backing_format != "qcow2")
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("backing_format '{}' is not one of raw, qcow2", request.backing_format));
}

const VolumeState& StorageService::create_volume(const CreateVolumeRequest& request) {
    check_volume_request(request);
    if (request.preallocation == "full" || request.cluster_size || request.extended_l2 ||
        !request.compression_type.empty())
        throw vmstor::Error(
            ErrorCode::NotSupported,
            fmt::format("cannot create volume '{}' in pool '{}': preallocation=full, cluster_size, "
                        "extended_l2 and compression_type need a pool with a directory (dir, fs, "
                        "netfs), where vmstord writes the image itself",
                        request.name, request.pool));

    const std::string& type = pool(request.pool).type;
    if (type == "disk" && request.format != "raw")
        throw vmstor::Error(ErrorCode::NotSupported,
                            fmt::format("cannot create volume '{}' in pool '{}': a disk pool's volumes are "
                                        "partitions, which hold raw data; give format raw",
                                        request.name, request.pool));
    virt::VolumeDefinition definition;
    definition.name = request.name;
    definition.capacity = request.capacity;
    // A partition's format is its partition type: libvirt's default ('none') rather than "raw".
    definition.format = type == "disk" ? "" : request.format;
    // libvirt would ask qemu-img for compat 0.10 when none is named; the API's default is 1.1.
    definition.compat = request.format == "qcow2" && request.compat.empty() ? "1.1" : request.compat;
    definition.lazy_refcounts = request.lazy_refcounts;
    definition.backing_path = request.backing_path;
    definition.backing_format = request.backing_format;
    definition.permissions = request.permissions;
    unsigned flags = 0;
    if (request.preallocation == "metadata") {
        flags |= VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA;
    } else if (request.preallocation == "falloc") {
        // libvirt preallocates raw files up to `allocation`, and asks qemu-img for falloc when a qcow2
        // volume's allocation covers its capacity.
        definition.allocation = request.capacity;
        if (request.format == "qcow2")
            flags |= VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA;
    }
    std::string xml = virt::volume_xml(definition);
    virt::VolumeHandle volume(virStorageVolCreateXML(lookup_pool(request.pool).get(), xml.c_str(), flags));
    if (!volume)
        throw virt::last_error(
            fmt::format("cannot create volume '{}' in pool '{}'", request.name, request.pool));
    sync_volume(request.pool, request.name);
    return this->volume(request.pool, request.name);
}

void StorageService::delete_volume(const std::string& pool_name, const std::string& name) {
    volume(pool_name, name);
    if (virStorageVolDelete(lookup_volume(pool_name, name).get(), 0) < 0)
        throw virt::last_error(fmt::format("cannot delete volume '{}' in pool '{}'", name, pool_name));
    schedules_.remove({pool_name, name}); // a new volume of that name starts without one
    sync_pool(pool_name, VolumeSync::NewOnly);
}

void StorageService::resize_volume(const std::string& pool_name, const std::string& name,
                                   std::uint64_t capacity, bool shrink) {
    const VolumeState& state = volume(pool_name, name);
    auto refuse = [&](ErrorCode code, const std::string& why) {
        return vmstor::Error(code, fmt::format("cannot resize volume '{}' in pool '{}' to {} bytes: {}", name,
                                               pool_name, capacity, why));
    };
    if (capacity == 0)
        throw refuse(ErrorCode::InvalidArgument, "a volume cannot have 0 bytes");
    std::uint64_t limit = state.format == "qcow2" ? max_qcow2_capacity : max_raw_capacity;
    if (capacity > limit)
        throw refuse(ErrorCode::InvalidArgument, fmt::format("that is above the largest {} volume ({})",
                                                             state.format, format_size(limit)));
    if (capacity == state.capacity)
        return;
    if (capacity < state.capacity && !shrink)
        throw refuse(ErrorCode::InvalidArgument,
                     fmt::format("that is smaller than its {} bytes; shrinking needs the option shrink=true "
                                 "(vmstorctl vol-resize --shrink)",
                                 state.capacity));
    unsigned flags = capacity < state.capacity ? VIR_STORAGE_VOL_RESIZE_SHRINK : 0;
    if (virStorageVolResize(lookup_volume(pool_name, name).get(), capacity, flags) < 0)
        throw virt::last_error(fmt::format("cannot resize volume '{}' in pool '{}'", name, pool_name));
    sync_volume(pool_name, name);
}

const PoolState& StorageService::pool_for_new_volume(const std::string& pool_name,
                                                     const std::string& name) const {
    validate_name("volume", name);
    const PoolState& state = pool(pool_name);
    if (!state.active)
        throw new_volume_refusal(ErrorCode::InvalidArgument, pool_name, name,
                                 "the pool is not running; start it first");
    if (volumes(pool_name).contains(name))
        throw new_volume_refusal(ErrorCode::AlreadyExists, pool_name, name, "it exists");
    return state;
}

std::shared_ptr<NewVolumeFile> StorageService::new_volume_file(const std::string& pool_name,
                                                               const std::string& name,
                                                               const std::string& operation,
                                                               const std::string& format) {
    const PoolState& state = pool_for_new_volume(pool_name, name);
    if (!writes_files(pool_name))
        throw new_volume_refusal(
            ErrorCode::NotSupported, pool_name, name,
            fmt::format("vmstord writes image files only into pools with a directory (dir, fs, netfs), "
                        "not into '{}' pools",
                        state.type));
    JobRecord record;
    record.uri = uri_;
    record.pool = pool_name;
    record.volume = name;
    record.operation = operation;
    record.started = record_time_now();
    try {
        auto file = std::make_shared<NewVolumeFile>(state.target_path, name, records_, std::move(record));
        record_format(state.target_path + "/" + name, format); // before the name can be seen
        return file;
    } catch (const vmstor::Error& e) {
        throw new_volume_refusal(e.code(), pool_name, name, e.what());
    }
}

StorageService::NewBlockVolume StorageService::new_block_volume(const std::string& pool_name,
                                                                const std::string& name,
                                                                std::uint64_t capacity,
                                                                const std::string& operation) {
    const PoolState& state = pool_for_new_volume(pool_name, name);
    auto refuse = [&](ErrorCode code, const std::string& why) {
        return new_volume_refusal(code, pool_name, name, why);
    };
    if (writes_files(pool_name))
        throw refuse(ErrorCode::Failed, "the pool has a directory: vmstord creates the file itself");
    if (!holds_local_devices(state.type))
        throw refuse(ErrorCode::NotSupported,
                     fmt::format("the volumes of '{}' pools are neither files nor devices of this host, "
                                 "which vmstord could write",
                                 state.type));
    if (capacity == 0)
        throw refuse(ErrorCode::InvalidArgument, "the capacity is 0 bytes");
    if (state.available && capacity > state.available)
        throw refuse(ErrorCode::NoSpace,
                     fmt::format("it needs {} bytes and the pool has {} free", capacity, state.available));
    // Recorded before libvirt makes it, so that a stop at any point later has it deleted at the next start.
    JobRecord record;
    record.kind = JobRecord::Kind::Device;
    record.uri = uri_;
    record.pool = pool_name;
    record.volume = name;
    record.operation = operation;
    record.started = record_time_now();
    NewBlockVolume made;
    try {
        made.record = records_.add(record);
    } catch (const vmstor::Error& e) {
        throw refuse(e.code(), fmt::format("cannot record the job in the state directory: {}", e.what()));
    }
    // No format: libvirt's own for the pool (a partition type for disk pools, none for logical ones).
    virt::VolumeDefinition definition;
    definition.name = name;
    definition.capacity = capacity;
    definition.allocation = capacity;
    std::string xml = virt::volume_xml(definition);
    virt::VolumeHandle volume(virStorageVolCreateXML(lookup_pool(pool_name).get(), xml.c_str(), 0));
    if (!volume) {
        vmstor::Error error =
            virt::last_error(fmt::format("cannot create volume '{}' in pool '{}'", name, pool_name));
        records_.remove(made.record);
        throw error;
    }
    if (virt::CString path(virStorageVolGetPath(volume.get())); path)
        record_format(path.get(), "raw"); // whatever the device held before
    sync_volume(pool_name, name);
    made.path = this->volume(pool_name, name).path;
    record.path = made.path;
    record.key = this->volume(pool_name, name).key;
    try {
        records_.update(made.record, record);
    } catch (const vmstor::Error& e) {
        spdlog::warn("cannot complete the record of new volume '{}' of pool '{}': {}", name, pool_name,
                     e.what());
    }
    return made;
}

std::pair<std::string, std::string> StorageService::lookup_volume_by_path(const std::string& path) {
    for (const auto& [pool_name, list] : volumes_)
        for (const auto& [name, state] : list)
            if (state.path == path)
                return {pool_name, name};
    throw vmstor::Error(ErrorCode::NotFound, fmt::format("no volume of any running pool is at '{}'", path));
}

void StorageService::sync_volume(const std::string& pool_name, const std::string& name) {
    VolumeState state = read_volume_state(pool_name, lookup_volume(pool_name, name).get());
    apply_format_record(state);
    save_formats();
    fill_usage(state, true);
    auto& known = volumes_[pool_name];
    auto it = known.find(name);
    if (it == known.end()) {
        observer_.volume_added(known.emplace(name, std::move(state)).first->second);
    } else if (!(it->second == state)) {
        VolumeState before = std::exchange(it->second, std::move(state));
        observer_.volume_changed(before, it->second);
    }
    sync_pool(pool_name, VolumeSync::NewOnly);
}

} // namespace vmstor::storage
