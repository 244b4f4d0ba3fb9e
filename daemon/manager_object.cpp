#include "manager_object.hpp"

#include "authorizer.hpp"
#include "common/names.hpp"
#include "error_boundary.hpp"
#include "job_registry.hpp"
#include "object_paths.hpp"
#include "options.hpp"
#include "pool_definition.hpp"

#include <fmt/format.h>

namespace vmstor::daemon {

namespace {
constexpr const char* manager_interface = "org.vmstor.Storage1.Manager";
} // namespace

ManagerObject::ManagerObject(sdbus::IConnection& bus, storage::StorageService& service, JobRegistry& jobs,
                             Authorizer& authorizer)
    : AdaptorInterfaces(bus, root_path), service_(service), jobs_(jobs), authorizer_(authorizer) {
    registerAdaptor();
}

ManagerObject::~ManagerObject() {
    unregisterAdaptor();
}

void ManagerObject::connection_changed() {
    pool_types_.clear();
    if (service_.connected()) {
        try {
            for (const auto& caps : service_.pool_capabilities())
                if (caps.supported)
                    pool_types_.push_back(caps.type);
        } catch (const vmstor::Error& e) {
            spdlog::warn("{}", e.what());
        }
    }
    emitPropertiesChangedSignal(manager_interface, {"Connected", "LibvirtVersion", "PoolTypes"});
}

void ManagerObject::GetPoolCapabilities(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                                        std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "GetPoolCapabilities options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()).without_interaction(), alive_,
                              std::move(result), Action::Read, {}, [this](const Caller&) {
                                  std::map<std::string, sdbus::Variant> out;
                                  for (const auto& caps : service_.pool_capabilities()) {
                                      std::map<std::string, sdbus::Variant> entry;
                                      entry["supported"] = caps.supported;
                                      entry["source_formats"] = caps.source_formats;
                                      entry["volume_formats"] = caps.volume_formats;
                                      entry["required"] = virt::required_pool_fields(caps.type);
                                      out[caps.type] = entry;
                                  }
                                  return out;
                              });
    });
}

void ManagerObject::FindPoolSources(
    sdbus::Result<std::vector<std::map<std::string, sdbus::Variant>>>&& result, std::string type,
    std::map<std::string, sdbus::Variant> source, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "FindPoolSources options", {});
        if (type.empty())
            throw vmstor::Error(ErrorCode::InvalidArgument, "FindPoolSources: the pool type is empty");
        virt::PoolSource hint = read_pool_source(source, "FindPoolSources source");
        reply_when_authorized(authorizer_, Caller::of(getObject()).without_interaction(), alive_,
                              std::move(result), Action::Read, {{"type", type}},
                              [this, type, hint](const Caller&) {
                                  std::vector<std::map<std::string, sdbus::Variant>> out;
                                  for (const auto& found : service_.find_pool_sources(type, hint))
                                      out.push_back(source_to_map(found));
                                  return out;
                              });
    });
}

void ManagerObject::CreatePool(sdbus::Result<sdbus::ObjectPath>&& result, std::string name, std::string type,
                               std::map<std::string, sdbus::Variant> definition,
                               std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "CreatePool options", {{"build", "b"}, {"start", "b"}, {"autostart", "b"}});
        storage::CreatePoolRequest request;
        request.build = opts.flag("build", true);
        request.start = opts.flag("start", true);
        request.autostart = opts.flag("autostart", true);
        reply_when_authorized(
            authorizer_, Caller::of(getObject()), alive_, std::move(result), Action::ManagePools,
            {{"pool", name}},
            [this, name, type, definition = std::move(definition), request](const Caller&) mutable {
                validate_name("pool", name);
                if (type.empty())
                    throw vmstor::Error(ErrorCode::InvalidArgument,
                                        fmt::format("cannot create pool '{}': the type is empty", name));
                request.definition = read_pool_definition(name, type, definition);
                return sdbus::ObjectPath(pool_path(service_.create_pool(request)));
            });
    });
}

void ManagerObject::DefinePoolXML(sdbus::Result<sdbus::ObjectPath>&& result, std::string xml,
                                  std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "DefinePoolXML options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                              Action::ManagePools, {}, [this, xml = std::move(xml)](const Caller&) {
                                  if (xml.empty())
                                      throw vmstor::Error(ErrorCode::InvalidArgument,
                                                          "DefinePoolXML: the XML is empty");
                                  return sdbus::ObjectPath(pool_path(service_.define_pool_xml(xml)));
                              });
    });
}

void ManagerObject::LookupVolumeByPath(sdbus::Result<sdbus::ObjectPath>&& result, std::string path,
                                       std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "LookupVolumeByPath options", {});
        if (path.empty() || path.front() != '/')
            throw vmstor::Error(ErrorCode::InvalidArgument,
                                fmt::format("LookupVolumeByPath: '{}' is not an absolute path", path));
        reply_when_authorized(authorizer_, Caller::of(getObject()).without_interaction(), alive_,
                              std::move(result), Action::Read, {{"path", path}}, [this, path](const Caller&) {
                                  auto [pool, volume] = service_.lookup_volume_by_path(path);
                                  return sdbus::ObjectPath(volume_path(pool, volume));
                              });
    });
}

void ManagerObject::ListJobs(sdbus::Result<std::vector<sdbus::ObjectPath>>&& result,
                             std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "ListJobs options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()).without_interaction(), alive_,
                              std::move(result), Action::Read, {},
                              [this](const Caller&) { return jobs_.paths(); });
    });
}

std::string ManagerObject::Version() {
    return VMSTOR_VERSION;
}
std::string ManagerObject::LibvirtURI() {
    return service_.uri();
}
std::string ManagerObject::LibvirtVersion() {
    return service_.libvirt_version();
}
bool ManagerObject::Connected() {
    return service_.connected();
}
std::vector<std::string> ManagerObject::PoolTypes() {
    return pool_types_;
}

} // namespace vmstor::daemon
