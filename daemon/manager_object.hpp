// org.vmstor.Storage1.Manager and the ObjectManager at /org/vmstor/Storage1.
#pragma once

#include "authorized_call.hpp"
#include "storage/service.hpp"
#include "vmstor-manager-adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

namespace vmstor::daemon {

class JobRegistry;
class Authorizer;

/// @brief The root object: daemon facts, pool creation, and the ObjectManager for every pool and volume.
class ManagerObject final
    : public sdbus::AdaptorInterfaces<org::vmstor::Storage1::Manager_adaptor, sdbus::ObjectManager_adaptor,
                                      sdbus::Properties_adaptor> {
  public:
    ManagerObject(sdbus::IConnection& bus, storage::StorageService& service, JobRegistry& jobs,
                  Authorizer& authorizer);
    ~ManagerObject();

    /// @brief Emits PropertiesChanged for Connected and what a (re)connection can change.
    void connection_changed();

  private:
    void GetPoolCapabilities(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                             std::map<std::string, sdbus::Variant> options) override;
    void FindPoolSources(sdbus::Result<std::vector<std::map<std::string, sdbus::Variant>>>&& result,
                         std::string type, std::map<std::string, sdbus::Variant> source,
                         std::map<std::string, sdbus::Variant> options) override;
    void CreatePool(sdbus::Result<sdbus::ObjectPath>&& result, std::string name, std::string type,
                    std::map<std::string, sdbus::Variant> definition,
                    std::map<std::string, sdbus::Variant> options) override;
    void DefinePoolXML(sdbus::Result<sdbus::ObjectPath>&& result, std::string xml,
                       std::map<std::string, sdbus::Variant> options) override;
    void LookupVolumeByPath(sdbus::Result<sdbus::ObjectPath>&& result, std::string path,
                            std::map<std::string, sdbus::Variant> options) override;
    void ListJobs(sdbus::Result<std::vector<sdbus::ObjectPath>>&& result,
                  std::map<std::string, sdbus::Variant> options) override;

    std::string Version() override;
    std::string LibvirtURI() override;
    std::string LibvirtVersion() override;
    bool Connected() override;
    std::vector<std::string> PoolTypes() override;

    storage::StorageService& service_;
    JobRegistry& jobs_;
    Authorizer& authorizer_;
    std::vector<std::string> pool_types_; ///< read once per connection
    Liveness alive_ = make_liveness();
};

} // namespace vmstor::daemon
