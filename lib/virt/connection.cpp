#include "connection.hpp"

#include "errors.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vmstor::virt {

namespace {
// Seconds between keepalive probes, and how many may go unanswered before the connection counts as lost.
constexpr int keepalive_interval = 5;
constexpr unsigned keepalive_count = 3;
} // namespace

std::unique_ptr<Connection> Connection::open(const std::string& uri, ConnectionEvents events) {
    ConnectHandle handle(virConnectOpen(uri.c_str()));
    if (!handle)
        throw last_error(fmt::format("cannot connect to libvirt at '{}'", uri));
    std::unique_ptr<Connection> connection(new Connection(std::move(handle), std::move(events)));
    connection->subscribe();
    return connection;
}

Connection::Connection(ConnectHandle handle, ConnectionEvents events)
    : handle_(std::move(handle)), events_(std::move(events)) {}

void Connection::subscribe() {
    if (virConnectSetKeepAlive(get(), keepalive_interval, keepalive_count) < 0)
        spdlog::warn("{}", last_error("libvirt keepalive not enabled").what());
    if (virConnectRegisterCloseCallback(get(), on_close, this, nullptr) < 0)
        throw last_error("cannot watch the libvirt connection");
    close_callback_registered_ = true;
    lifecycle_callback_ =
        virConnectStoragePoolEventRegisterAny(get(), nullptr, VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE,
                                              VIR_STORAGE_POOL_EVENT_CALLBACK(on_lifecycle), this, nullptr);
    if (lifecycle_callback_ < 0)
        throw last_error("cannot subscribe to storage pool lifecycle events");
    refresh_callback_ =
        virConnectStoragePoolEventRegisterAny(get(), nullptr, VIR_STORAGE_POOL_EVENT_ID_REFRESH,
                                              VIR_STORAGE_POOL_EVENT_CALLBACK(on_refresh), this, nullptr);
    if (refresh_callback_ < 0)
        throw last_error("cannot subscribe to storage pool refresh events");
}

Connection::~Connection() {
    // On a dead connection these fail; the handles are released all the same.
    if (lifecycle_callback_ >= 0)
        virConnectStoragePoolEventDeregisterAny(get(), lifecycle_callback_);
    if (refresh_callback_ >= 0)
        virConnectStoragePoolEventDeregisterAny(get(), refresh_callback_);
    if (close_callback_registered_)
        virConnectUnregisterCloseCallback(get(), on_close);
}

std::string Connection::libvirt_version() const {
    unsigned long version = 0;
    if (virConnectGetLibVersion(get(), &version) < 0)
        throw last_error("cannot read libvirt's version");
    return fmt::format("{}.{}.{}", version / 1000000, version / 1000 % 1000, version % 1000);
}

void Connection::on_close(virConnectPtr, int reason, void* opaque) {
    spdlog::warn("libvirt connection closed (reason {})", reason);
    auto* self = static_cast<Connection*>(opaque);
    if (self->events_.closed)
        self->events_.closed();
}

void Connection::on_lifecycle(virConnectPtr, virStoragePoolPtr pool, int event, int, void* opaque) {
    auto* self = static_cast<Connection*>(opaque);
    const char* name = virStoragePoolGetName(pool);
    spdlog::debug("pool event {} on '{}'", event, name ? name : "?");
    if (name && self->events_.pool_event)
        self->events_.pool_event(name);
}

void Connection::on_refresh(virConnectPtr, virStoragePoolPtr pool, void* opaque) {
    on_lifecycle(nullptr, pool, -1, 0, opaque);
}

} // namespace vmstor::virt
