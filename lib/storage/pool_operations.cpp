// Pool operations: each validates what libvirt would take badly, calls libvirt, then re-reads the pool so
// that the model (and so D-Bus) shows the result before the caller hears back.
#include "common/names.hpp"
#include "service.hpp"
#include "virt/errors.hpp"

#include <filesystem>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vmstor::storage {

namespace {

bool pool_type_needs_overwrite_guard(const std::string& type) {
    return type == "fs" || type == "disk" || type == "logical";
}

void require_fields(const virt::PoolDefinition& definition) {
    for (const std::string& field : virt::required_pool_fields(definition.type)) {
        bool missing = (field == "target.path" && definition.target_path.empty()) ||
                       (field == "source.device" && definition.source.devices.empty()) ||
                       (field == "source.host" && definition.source.host.empty()) ||
                       (field == "source.dir" && definition.source.dir.empty()) ||
                       (field == "source.name" && definition.source.name.empty());
        if (missing)
            throw vmstor::Error(
                ErrorCode::InvalidArgument,
                fmt::format("cannot create pool '{}' of type '{}': '{}' is required for this type",
                            definition.name, definition.type, field));
    }
    if (!definition.target_path.empty() && definition.target_path.front() != '/')
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("cannot create pool '{}': target.path '{}' is not an absolute path",
                                        definition.name, definition.target_path));
}

} // namespace

std::string StorageService::create_pool(const CreatePoolRequest& request) {
    const virt::PoolDefinition& definition = request.definition;
    validate_name("pool", definition.name);
    if (pools_.contains(definition.name))
        throw vmstor::Error(
            ErrorCode::AlreadyExists,
            fmt::format("cannot create pool '{}': a pool of that name exists", definition.name));
    auto types = pool_capabilities();
    auto type =
        std::find_if(types.begin(), types.end(), [&](const auto& t) { return t.type == definition.type; });
    if (type == types.end())
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("cannot create pool '{}': '{}' is not a libvirt pool type",
                                        definition.name, definition.type));
    if (!type->supported)
        throw vmstor::Error(
            ErrorCode::NotSupported,
            fmt::format("cannot create pool '{}': this libvirt does not support pools of type '{}'",
                        definition.name, definition.type));
    require_fields(definition);

    // Undo what was done, newest first, if a later step fails: no half-made pool is left defined.
    std::string xml = virt::pool_xml(definition);
    virt::PoolHandle pool(virStoragePoolDefineXML(conn(), xml.c_str(), 0));
    if (!pool)
        throw virt::last_error(fmt::format("cannot define pool '{}'", definition.name));
    bool target_existed = !definition.target_path.empty() && std::filesystem::exists(definition.target_path);
    bool built = false;
    bool started = false;
    try {
        if (request.build) {
            unsigned flags =
                pool_type_needs_overwrite_guard(definition.type) ? VIR_STORAGE_POOL_BUILD_NO_OVERWRITE : 0;
            if (virStoragePoolBuild(pool.get(), flags) < 0)
                throw virt::last_error(fmt::format("cannot build pool '{}'", definition.name));
            built = true;
        }
        if (request.start) {
            if (virStoragePoolCreate(pool.get(), 0) < 0)
                throw virt::last_error(fmt::format("cannot start pool '{}'", definition.name));
            started = true;
        }
        if (request.autostart && virStoragePoolSetAutostart(pool.get(), 1) < 0)
            throw virt::last_error(fmt::format("cannot mark pool '{}' to start on boot", definition.name));
    } catch (const vmstor::Error& e) {
        spdlog::info("creating pool '{}' failed, undoing: {}", definition.name, e.what());
        if (started)
            virStoragePoolDestroy(pool.get());
        // Only storage that this call made is removed: a directory that existed before stays.
        if (built && !target_existed)
            virStoragePoolDelete(pool.get(), 0);
        // A build that failed half-way may have made the target directory: remove it if it is empty.
        std::error_code ignored;
        if (!target_existed && !definition.target_path.empty() &&
            std::filesystem::is_directory(definition.target_path, ignored))
            std::filesystem::remove(definition.target_path, ignored);
        virStoragePoolUndefine(pool.get());
        sync_pool(definition.name, VolumeSync::NewOnly);
        throw;
    }
    sync_pool(definition.name, VolumeSync::All);
    return definition.name;
}

std::string StorageService::define_pool_xml(const std::string& xml) {
    std::string wanted = virt::parse_pool_xml(xml).name;
    validate_name("pool", wanted);
    if (pools_.contains(wanted))
        throw vmstor::Error(
            ErrorCode::AlreadyExists,
            fmt::format("cannot define pool '{}' from XML: a pool of that name exists", wanted));
    virt::PoolHandle pool(virStoragePoolDefineXML(conn(), xml.c_str(), 0));
    if (!pool)
        throw virt::last_error("cannot define a pool from the given XML");
    std::string name = virStoragePoolGetName(pool.get());
    sync_pool(name, VolumeSync::All);
    return name;
}

void StorageService::start_pool(const std::string& name) {
    if (pool(name).active)
        return;
    if (virStoragePoolCreate(lookup_pool(name).get(), 0) < 0)
        throw virt::last_error(fmt::format("cannot start pool '{}'", name));
    sync_pool(name, VolumeSync::All);
}

void StorageService::stop_pool(const std::string& name) {
    if (!pool(name).active)
        return;
    if (virStoragePoolDestroy(lookup_pool(name).get()) < 0)
        throw virt::last_error(fmt::format("cannot stop pool '{}'", name));
    sync_pool(name, VolumeSync::All);
}

std::function<void()> StorageService::prepare_build(const std::string& name) {
    const PoolState& state = pool(name);
    if (state.active)
        throw vmstor::Error(ErrorCode::Busy,
                            fmt::format("cannot build pool '{}': it is running; stop it first", name));
    unsigned flags = pool_type_needs_overwrite_guard(state.type) ? VIR_STORAGE_POOL_BUILD_NO_OVERWRITE : 0;
    auto handle = std::make_shared<virt::PoolHandle>(lookup_pool(name));
    return [handle, flags, name] {
        if (virStoragePoolBuild(handle->get(), flags) < 0)
            throw virt::last_error(fmt::format("cannot build pool '{}'", name));
    };
}

void StorageService::resync_pool(const std::string& name) {
    if (connected())
        sync_pool(name, VolumeSync::All);
}

void StorageService::volume_file_changed(const std::string& pool_name, const std::string& volume) {
    try {
        if (virStoragePoolRefresh(lookup_pool(pool_name).get(), 0) < 0)
            throw virt::last_error(fmt::format("cannot refresh pool '{}'", pool_name));
        virt::PoolHandle pool = lookup_pool(pool_name);
        if (virt::VolumeHandle handle{virStorageVolLookupByName(pool.get(), volume.c_str())})
            sync_volume(pool_name, volume);
        else
            sync_pool(pool_name, VolumeSync::NewOnly);
    } catch (const vmstor::Error& e) {
        spdlog::warn("after writing volume '{}' of pool '{}': {}", volume, pool_name, e.what());
        reread_image(pool_name, volume);
    }
}

void StorageService::reread_image(const std::string& pool_name, const std::string& volume) {
    auto list = volumes_.find(pool_name);
    if (list == volumes_.end() || !list->second.contains(volume))
        return;
    VolumeState& known = list->second.at(volume);
    VolumeState state = known;
    try {
        fill_usage(state, false);
    } catch (const vmstor::Error& e) {
        spdlog::warn("cannot re-read the image of volume '{}' of pool '{}': {}", volume, pool_name, e.what());
        return;
    }
    if (state == known)
        return;
    VolumeState before = std::exchange(known, std::move(state));
    observer_.volume_changed(before, known);
}

void StorageService::refresh_pool(const std::string& name) {
    if (!pool(name).active)
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("cannot refresh pool '{}': it is not running", name));
    if (virStoragePoolRefresh(lookup_pool(name).get(), 0) < 0)
        throw virt::last_error(fmt::format("cannot refresh pool '{}'", name));
    sync_pool(name, VolumeSync::All);
}

void StorageService::undefine_pool(const std::string& name) {
    const PoolState& state = pool(name);
    if (!state.persistent)
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("cannot undefine pool '{}': it is transient and goes away when stopped", name));
    if (virStoragePoolUndefine(lookup_pool(name).get()) < 0)
        throw virt::last_error(fmt::format("cannot undefine pool '{}'", name));
    sync_pool(name, VolumeSync::All);
    if (!pools_.contains(name) && thresholds_.erase(name)) {
        try {
            settings_.save_thresholds(thresholds_);
        } catch (const vmstor::Error& e) {
            spdlog::warn("{}", e.what());
        }
    }
}

void StorageService::delete_pool(const std::string& name) {
    const PoolState& state = pool(name);
    if (state.active)
        throw vmstor::Error(
            ErrorCode::Busy,
            fmt::format("cannot delete the storage of pool '{}': it is running; stop it first", name));
    if (virStoragePoolDelete(lookup_pool(name).get(), 0) < 0)
        throw virt::last_error(fmt::format("cannot delete the storage of pool '{}'", name));
    sync_pool(name, VolumeSync::All);
}

void StorageService::set_autostart(const std::string& name, bool autostart) {
    const PoolState& state = pool(name);
    if (state.autostart == autostart)
        return;
    if (!state.persistent)
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("cannot change autostart of pool '{}': it is transient", name));
    if (virStoragePoolSetAutostart(lookup_pool(name).get(), autostart ? 1 : 0) < 0)
        throw virt::last_error(fmt::format("cannot change autostart of pool '{}'", name));
    sync_pool(name, VolumeSync::NewOnly);
}

void StorageService::set_thresholds(const std::string& name, const Thresholds& thresholds) {
    pool(name);
    if (!(thresholds.warning > 0 && thresholds.warning <= thresholds.critical && thresholds.critical <= 1))
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("invalid thresholds for pool '{}': need 0 < warning ({}) <= critical ({}) <= 1", name,
                        thresholds.warning, thresholds.critical));
    auto saved = thresholds_;
    saved[name] = thresholds;
    settings_.save_thresholds(saved);
    thresholds_ = std::move(saved);
    check_fill_level(pool(name));
}

std::string StorageService::pool_xml(const std::string& name) {
    pool(name);
    virt::CString xml(virStoragePoolGetXMLDesc(lookup_pool(name).get(), 0));
    if (!xml)
        throw virt::last_error(fmt::format("cannot read the XML of pool '{}'", name));
    return xml.get();
}

std::vector<virt::PoolTypeCapabilities> StorageService::pool_capabilities() {
    virt::CString xml(virConnectGetStoragePoolCapabilities(conn(), 0));
    if (!xml)
        throw virt::last_error("cannot read libvirt's storage pool capabilities");
    return virt::parse_pool_capabilities(xml.get());
}

std::vector<virt::PoolSource> StorageService::find_pool_sources(const std::string& type,
                                                                const virt::PoolSource& hint) {
    std::string spec_xml = virt::source_xml(type, hint);
    virt::CString xml(virConnectFindStoragePoolSources(conn(), type.c_str(),
                                                       spec_xml.empty() ? nullptr : spec_xml.c_str(), 0));
    if (!xml)
        throw virt::last_error(fmt::format("cannot discover sources for pools of type '{}'", type));
    return virt::parse_pool_sources(xml.get());
}

} // namespace vmstor::storage
