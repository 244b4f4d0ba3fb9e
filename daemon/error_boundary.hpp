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

/// @brief Runs a handler body; whatever it throws leaves as an sdbus::Error with a named error.
template <typename Body> decltype(auto) guarded(Body&& body) {
    try {
        return std::forward<Body>(body)();
    } catch (const sdbus::Error&) {
        throw;
    } catch (const vmstor::Error& e) {
        throw to_dbus_error(e);
    } catch (const std::exception& e) {
        spdlog::error("unexpected failure in a D-Bus handler: {}", e.what());
        throw to_dbus_error(vmstor::Error(ErrorCode::Failed, std::string("internal error: ") + e.what()));
    } catch (...) {
        spdlog::error("unexpected non-standard exception in a D-Bus handler");
        throw to_dbus_error(vmstor::Error(ErrorCode::Failed, "internal error"));
    }
}

} // namespace vmstor::daemon
