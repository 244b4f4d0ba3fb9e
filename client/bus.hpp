// The client's side of the bus: the connection and one proxy class per remote object kind, over the
// proxies generated from dbus/*.xml.
#pragma once

#include <memory>
#include <string>

#include <sdbus-c++/sdbus-c++.h>

#include "vmstor-job-proxy.h"
#include "vmstor-manager-proxy.h"
#include "vmstor-pool-proxy.h"
#include "vmstor-snapshot-proxy.h"
#include "vmstor-volume-proxy.h"

namespace vmstor::client {

inline constexpr const char* service_name = "org.vmstor.Storage1";
inline constexpr const char* root_object_path = "/org/vmstor/Storage1";
inline constexpr const char* pool_interface = "org.vmstor.Storage1.Pool";
inline constexpr const char* volume_interface = "org.vmstor.Storage1.Volume";
inline constexpr const char* snapshot_interface = "org.vmstor.Storage1.Snapshot";
inline constexpr const char* job_interface = "org.vmstor.Storage1.Job";

/// @brief The system bus, or the session bus when `session` is set (DBUS_*_BUS_ADDRESS are honoured).
std::unique_ptr<sdbus::IConnection> connect_to_bus(bool session);

// The proxies make one-shot calls only and never subscribe to signals, so they skip registerProxy()
// (which would cost an AddMatch round trip per signal) and their signal handlers stay empty.

/// @brief The root object: Manager and ObjectManager.
class ManagerProxy final
    : public sdbus::ProxyInterfaces<org::vmstor::Storage1::Manager_proxy, sdbus::ObjectManager_proxy> {
  public:
    explicit ManagerProxy(sdbus::IConnection& connection)
        : ProxyInterfaces(connection, service_name, root_object_path) {}

  private:
    void onInterfacesAdded(const sdbus::ObjectPath&,
                           const std::map<std::string, std::map<std::string, sdbus::Variant>>&) override {}
    void onInterfacesRemoved(const sdbus::ObjectPath&, const std::vector<std::string>&) override {}
};

/// @brief Any object's org.freedesktop.DBus.Properties.
class PropertiesProxy final : public sdbus::ProxyInterfaces<sdbus::Properties_proxy> {
  public:
    PropertiesProxy(sdbus::IConnection& connection, const std::string& path)
        : ProxyInterfaces(connection, service_name, path) {}

  private:
    void onPropertiesChanged(const std::string&, const std::map<std::string, sdbus::Variant>&,
                             const std::vector<std::string>&) override {}
};

/// @brief One pool object.
class PoolProxy final : public sdbus::ProxyInterfaces<org::vmstor::Storage1::Pool_proxy> {
  public:
    PoolProxy(sdbus::IConnection& connection, const std::string& path)
        : ProxyInterfaces(connection, service_name, path) {}

  private:
    void onThresholdCrossed(const std::string&, const double&) override {}
};

/// @brief One volume object.
class VolumeProxy final : public sdbus::ProxyInterfaces<org::vmstor::Storage1::Volume_proxy> {
  public:
    VolumeProxy(sdbus::IConnection& connection, const std::string& path)
        : ProxyInterfaces(connection, service_name, path) {}
};

/// @brief One internal snapshot object.
class SnapshotProxy final : public sdbus::ProxyInterfaces<org::vmstor::Storage1::Snapshot_proxy> {
  public:
    SnapshotProxy(sdbus::IConnection& connection, const std::string& path)
        : ProxyInterfaces(connection, service_name, path) {}
};

/// @brief One job object, for calls only (job_follower.cpp has the one that listens to its signals).
class JobProxy final : public sdbus::ProxyInterfaces<org::vmstor::Storage1::Job_proxy> {
  public:
    JobProxy(sdbus::IConnection& connection, const std::string& path)
        : ProxyInterfaces(connection, service_name, path) {}

  private:
    void onCompleted(const bool&, const std::string&, const std::string&) override {}
};

} // namespace vmstor::client
