#include "pool_object.hpp"

#include "caller.hpp"
#include "error_boundary.hpp"
#include "job_registry.hpp"
#include "object_paths.hpp"
#include "options.hpp"
#include "pool_definition.hpp"

#include <fmt/format.h>

namespace vmstor::daemon {

namespace {

constexpr const char* pool_interface = "org.vmstor.Storage1.Pool";

std::vector<std::string> changed_properties(const storage::PoolState& a, const storage::PoolState& b) {
    std::vector<std::string> names;
    auto note = [&](bool differs, const char* name) {
        if (differs)
            names.emplace_back(name);
    };
    note(a.state != b.state, "State");
    note(a.active != b.active, "Active");
    note(a.persistent != b.persistent, "Persistent");
    note(a.autostart != b.autostart, "Autostart");
    note(a.capacity != b.capacity, "Capacity");
    note(a.allocation != b.allocation, "Allocation");
    note(a.available != b.available, "Available");
    note(a.target_path != b.target_path, "TargetPath");
    note(!(a.source == b.source), "Source");
    note(a.overcommit != b.overcommit, "Overcommit");
    return names;
}

[[noreturn]] void not_yet(const std::string& pool, std::string_view member) {
    throw vmstor::Error(
        ErrorCode::NotSupported,
        fmt::format("Pool.{} on pool '{}' is not supported by this vmstord yet", member, pool));
}

} // namespace

PoolObject::PoolObject(sdbus::IConnection& bus, storage::StorageService& service, JobRegistry& jobs,
                       const storage::PoolState& state)
    : AdaptorInterfaces(bus, pool_path(state.name)), service_(service), jobs_(jobs), name_(state.name),
      state_(state) {
    registerAdaptor();
    emitInterfacesAddedSignal();
}

PoolObject::~PoolObject() {
    emitInterfacesRemovedSignal();
    unregisterAdaptor();
}

void PoolObject::changed(const storage::PoolState& before, const storage::PoolState& after) {
    state_ = after;
    auto names = changed_properties(before, after);
    if (!names.empty())
        emitPropertiesChangedSignal(pool_interface, names);
}

void PoolObject::threshold_crossed(storage::FillLevel level, double used) {
    emitThresholdCrossed(std::string(storage::fill_level_name(level)), used);
}

void PoolObject::Start(const std::map<std::string, sdbus::Variant>& options) {
    guarded([&] {
        Options(options, "Pool.Start options", {});
        service_.start_pool(name_);
    });
}

void PoolObject::Stop(const std::map<std::string, sdbus::Variant>& options) {
    guarded([&] {
        Options(options, "Pool.Stop options", {});
        service_.stop_pool(name_);
    });
}

sdbus::ObjectPath PoolObject::Build(const std::map<std::string, sdbus::Variant>& options) {
    return guarded([&] {
        Options opts(options, "Pool.Build options", {{"wait", "b"}});
        std::string name = name_;
        storage::StorageService& service = service_;
        return jobs_.run("pool-build", {sdbus::ObjectPath(pool_path(name_))}, caller_uid(getObject()),
                         opts.flag("wait", false), [&service, name] { service.build_pool(name); });
    });
}

void PoolObject::Refresh(const std::map<std::string, sdbus::Variant>& options) {
    guarded([&] {
        Options(options, "Pool.Refresh options", {});
        service_.refresh_pool(name_);
    });
}

void PoolObject::Undefine(const std::map<std::string, sdbus::Variant>& options) {
    guarded([&] {
        Options(options, "Pool.Undefine options", {});
        service_.undefine_pool(name_); // may destroy this object: touch no member afterwards
    });
}

void PoolObject::Delete(const std::map<std::string, sdbus::Variant>& options) {
    guarded([&] {
        Options(options, "Pool.Delete options", {});
        service_.delete_pool(name_);
    });
}

sdbus::ObjectPath PoolObject::CreateVolume(const std::string& name, const uint64_t& capacity,
                                           const std::map<std::string, sdbus::Variant>& options) {
    return guarded([&] {
        Options opts(options, "CreateVolume options",
                     {{"format", "s"},
                      {"cluster_size", "t"},
                      {"compat", "s"},
                      {"lazy_refcounts", "b"},
                      {"preallocation", "s"},
                      {"extended_l2", "b"},
                      {"compression_type", "s"},
                      {"backing", "o|s"},
                      {"backing_format", "s"},
                      {"encryption.secret", "s"},
                      {"mode", "u"},
                      {"owner", "u"},
                      {"group", "u"},
                      {"wait", "b"}});
        for (const char* key : {"cluster_size", "extended_l2", "compression_type", "encryption.secret"})
            if (opts.has(key))
                throw vmstor::Error(
                    ErrorCode::NotSupported,
                    fmt::format("cannot create volume '{}' in pool '{}': option '{}' needs vmstor's "
                                "qcow2 engine for volume creation, which is not wired in yet",
                                name, name_, key));
        storage::CreateVolumeRequest request;
        request.pool = name_;
        request.name = name;
        request.capacity = capacity;
        request.format = opts.text("format").value_or("qcow2");
        request.preallocation = opts.text("preallocation").value_or("off");
        request.compat = opts.text("compat").value_or("");
        request.lazy_refcounts = opts.flag("lazy_refcounts", false);
        if (auto backing = opts.text("backing")) {
            if (opts.signature("backing") == "o") {
                auto [pool, volume] = volume_names_from_path(*backing);
                request.backing_path = service_.volume(pool, volume).path;
            } else {
                request.backing_path = *backing;
            }
        }
        request.backing_format = opts.text("backing_format").value_or("");
        request.permissions.mode = opts.u32("mode");
        request.permissions.owner = opts.u32("owner");
        request.permissions.group = opts.u32("group");
        const storage::VolumeState& created = service_.create_volume(request);
        return sdbus::ObjectPath(volume_path(created.pool, created.name));
    });
}

sdbus::ObjectPath PoolObject::ImportVolume(const std::string&, const sdbus::UnixFd&,
                                           const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet(name_, "ImportVolume"); });
}

sdbus::ObjectPath PoolObject::CloneVolume(const sdbus::ObjectPath&, const std::string&,
                                          const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet(name_, "CloneVolume"); });
}

std::string PoolObject::GetXML(const std::map<std::string, sdbus::Variant>& options) {
    return guarded([&] {
        Options(options, "Pool.GetXML options", {});
        return service_.pool_xml(name_);
    });
}

void PoolObject::Autostart(const bool& value) {
    guarded([&] { service_.set_autostart(name_, value); });
}

std::map<std::string, sdbus::Variant> PoolObject::Source() {
    return source_to_map(state().source);
}

std::map<std::string, double> PoolObject::Thresholds() {
    const storage::Thresholds& thresholds = service_.thresholds(name_);
    return {{"warning", thresholds.warning}, {"critical", thresholds.critical}};
}

void PoolObject::Thresholds(const std::map<std::string, double>& value) {
    guarded([&] {
        storage::Thresholds thresholds = service_.thresholds(name_);
        for (const auto& [key, level] : value) {
            if (key == "warning")
                thresholds.warning = level;
            else if (key == "critical")
                thresholds.critical = level;
            else
                throw vmstor::Error(
                    ErrorCode::InvalidArgument,
                    fmt::format("Thresholds of pool '{}': unknown key '{}' (known: warning, critical)", name_,
                                key));
        }
        if (thresholds == service_.thresholds(name_))
            return;
        service_.set_thresholds(name_, thresholds);
        emitPropertiesChangedSignal(pool_interface, {"Thresholds"});
    });
}

} // namespace vmstor::daemon
