// org.vmstor.Storage1.Pool: one object per libvirt storage pool.
#pragma once

#include "authorized_call.hpp"
#include "deferred_property_set.hpp"
#include "storage/service.hpp"
#include "vmstor-pool-adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

namespace vmstor::daemon {

class JobRegistry;
class Authorizer;

class PoolObject final
    : public sdbus::AdaptorInterfaces<org::vmstor::Storage1::Pool_adaptor, sdbus::ManagedObject_adaptor,
                                      sdbus::Properties_adaptor> {
  public:
    PoolObject(sdbus::IConnection& bus, const RawBus& raw_bus, storage::StorageService& service,
               JobRegistry& jobs, Authorizer& authorizer, const storage::PoolState& state);
    ~PoolObject();

    /// @brief Takes the new state and emits PropertiesChanged for what differs.
    void changed(const storage::PoolState& before, const storage::PoolState& after);
    void threshold_crossed(storage::FillLevel level, double used);

  private:
    void Start(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void Stop(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void Build(sdbus::Result<sdbus::ObjectPath>&& result,
               std::map<std::string, sdbus::Variant> options) override;
    void Refresh(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void Undefine(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void Delete(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void CreateVolume(sdbus::Result<sdbus::ObjectPath>&& result, std::string name, uint64_t capacity,
                      std::map<std::string, sdbus::Variant> options) override;
    void ImportVolume(sdbus::Result<sdbus::ObjectPath>&& result, std::string name, sdbus::UnixFd fd,
                      std::map<std::string, sdbus::Variant> options) override;
    void CloneVolume(sdbus::Result<sdbus::ObjectPath>&& result, sdbus::ObjectPath source, std::string name,
                     std::map<std::string, sdbus::Variant> options) override;
    void GetXML(sdbus::Result<std::string>&& result, std::map<std::string, sdbus::Variant> options) override;

    std::string Name() override { return name_; }
    std::string UUID() override { return state().uuid; }
    std::string Type() override { return state().type; }
    std::string State() override { return state().state; }
    bool Active() override { return state().active; }
    bool Persistent() override { return state().persistent; }
    bool Autostart() override { return state().autostart; }
    void Autostart(const bool& value) override;
    uint64_t Capacity() override { return state().capacity; }
    uint64_t Allocation() override { return state().allocation; }
    uint64_t Available() override { return state().available; }
    std::string TargetPath() override { return state().target_path; }
    std::map<std::string, sdbus::Variant> Source() override;
    double Overcommit() override { return state().overcommit; }
    std::map<std::string, double> Thresholds() override;
    void Thresholds(const std::map<std::string, double>& value) override;
    /// @brief Throws Busy, naming the job, when a running job reads or writes a file of the pool: it
    /// cannot `what` meanwhile.
    void refuse_if_jobs_use(const std::string& what) const;
    /// @brief Properties.Set of Autostart and Thresholds: authorized without blocking the bus.
    void set_property(const std::string& property, const sdbus::Variant& value, const sdbus::MethodCall& call,
                      sdbus::Result<>&& reply);
    void set_autostart(bool value);
    void set_thresholds(const std::map<std::string, double>& value);
    /// @brief Throws InvalidArgument naming a key other than warning and critical.
    void check_threshold_keys(const std::map<std::string, double>& value) const;

    // A copy, so that property reads never fail, even in the moment between the pool's removal from the
    // model and this object's destruction.
    const storage::PoolState& state() const { return state_; }

    storage::StorageService& service_;
    JobRegistry& jobs_;
    Authorizer& authorizer_;
    std::string name_;
    storage::PoolState state_;
    Liveness alive_ = make_liveness();
    DeferredPropertySet property_set_;
};

} // namespace vmstor::daemon
