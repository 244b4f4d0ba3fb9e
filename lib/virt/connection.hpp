// One libvirt connection: opened with the event loop running, watched by a close callback, subscribed
// to storage pool lifecycle and refresh events.
#pragma once

#include "handles.hpp"

#include <functional>
#include <memory>
#include <string>

namespace vmstor::virt {

/// @brief What a connection reports. Both run on libvirt's event thread: hand the work to your own.
struct ConnectionEvents {
    std::function<void()> closed;                            ///< the connection is lost
    std::function<void(const std::string& pool)> pool_event; ///< a pool's lifecycle changed or it refreshed
};

class Connection {
  public:
    /// @brief Opens `uri` read-write; throws vmstor::Error when libvirt is unreachable.
    static std::unique_ptr<Connection> open(const std::string& uri, ConnectionEvents events);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    virConnectPtr get() const noexcept { return handle_.get(); }
    /// @brief libvirt's version as "major.minor.micro".
    std::string libvirt_version() const;

  private:
    explicit Connection(ConnectHandle handle, ConnectionEvents events);
    void subscribe();

    static void on_close(virConnectPtr, int reason, void* opaque);
    static void on_lifecycle(virConnectPtr, virStoragePoolPtr pool, int event, int detail, void* opaque);
    static void on_refresh(virConnectPtr, virStoragePoolPtr pool, void* opaque);

    ConnectHandle handle_;
    ConnectionEvents events_;
    int lifecycle_callback_ = -1;
    int refresh_callback_ = -1;
    bool close_callback_registered_ = false;
};

} // namespace vmstor::virt
