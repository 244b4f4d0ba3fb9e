// The one boundary every D-Bus handler goes through: sdbus-c++ 1.2 aborts the process on any exception
// other than sdbus::Error, so everything else is mapped here to org.vmstor.Storage1.Error.<Name>.
#pragma once

#include "common/error.hpp"

#include <exception>
#include <sdbus-c++/Error.h>
#include <spdlog/spdlog.h>
#include <string>
#include <utility>

namespace vmstor::daemon {

inline constexpr std::string_view error_prefix = "org.vmstor.Storage1.Error.";

/// @brief The D-Bus error for a project error.
sdbus::Error to_dbus_error(const vmstor::Error& error);
/// @brief The D-Bus error for whatever was thrown (for replies sent after the handler returned).
sdbus::Error to_dbus_error(std::exception_ptr error);

/// @brief Runs a handler body; whatever it throws leaves as an sdbus::Error with a named error.
template <typename Body> decltype(auto) guarded(Body&& body) {
    try {
        return std::forward<Body>(body)();
    } catch (...) {
        throw to_dbus_error(std::current_exception());
    }
}

/// @brief For destructors, which must not throw: runs `step` and logs what it throws (at shutdown the bus
/// may already refuse a signal).
template <typename Step> void without_throwing(std::string_view what, Step&& step) noexcept {
    try {
        std::forward<Step>(step)();
    } catch (const std::exception& e) {
        spdlog::debug("{}: {}", what, e.what());
    } catch (...) {
        spdlog::debug("{}: unknown failure", what);
    }
}

} // namespace vmstor::daemon
