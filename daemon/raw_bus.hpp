// The sd-bus connection beneath sdbus-c++'s, for objects registered through sd-bus directly (volumes: one
// static vtable for all of them instead of sdbus-c++'s per-object one). sdbus-c++ 1.2 exposes neither the
// sd_bus nor a way to wrap a raw message, so both are reached through its messages' protected members.
#pragma once

#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/Message.h>
#include <systemd/sd-bus.h>

namespace vmstor::daemon {

/// @brief The sd_bus_message an sdbus-c++ message wraps.
sd_bus_message* raw_message(const sdbus::Message& message);

class RawBus {
  public:
    /// @brief The sd-bus connection of `connection`, which must outlive this.
    explicit RawBus(sdbus::IConnection& connection);

    sd_bus* get() const { return bus_; }
    /// @brief `call`, a method call this bus is dispatching, as an sdbus-c++ message (it takes a reference),
    /// so that its arguments are read and its reply is sent (now, or later through an sdbus::Result) with
    /// sdbus-c++'s serialization.
    sdbus::MethodCall method_call(sd_bus_message* call) const;

  private:
    sd_bus* bus_ = nullptr;
    sdbus::internal::ISdBus* sdbus_ = nullptr; ///< sdbus-c++'s sd-bus entry points, which its messages use
};

} // namespace vmstor::daemon
