// Handlers of methods that may need the user to authenticate: polkit is asked without blocking the bus,
// and the method's work runs when it answers. Every path ends in exactly one reply.
#pragma once

#include "authorizer.hpp"
#include "error_boundary.hpp"

#include <exception>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <sdbus-c++/MethodResult.h>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace vmstor::daemon {

/// @brief Held by an object for as long as it lives, so that a continuation can tell whether the object
/// it would touch is still there (a volume deleted while its caller authenticated).
using Liveness = std::shared_ptr<int>;
inline Liveness make_liveness() {
    return std::make_shared<int>(0);
}

/// @brief Asks polkit whether `caller` has every permission in `needed`, then runs `body(caller, result)` on
/// the main loop. A refusal, an object gone meanwhile, or whatever `body` throws becomes the call's named
/// error. `body` replies through (or hands on) `result` as its last step: it must not throw after that.
template <typename... Results, typename Body>
void when_authorized(Authorizer& authorizer, const Caller& caller, const Liveness& alive,
                     sdbus::Result<Results...>&& result, std::vector<Permission> needed, Body body) {
    auto reply = std::make_shared<sdbus::Result<Results...>>(std::move(result));
    std::weak_ptr<int> object = alive;
    authorizer.check_all(
        caller, std::move(needed),
        [reply, object, caller, body = std::move(body)](std::exception_ptr refused) mutable {
            if (!refused && object.expired())
                refused = std::make_exception_ptr(vmstor::Error(
                    ErrorCode::NotFound,
                    fmt::format("{}: the object went away while polkit decided", caller.member)));
            if (refused) {
                reply->returnError(to_dbus_error(refused));
                return;
            }
            try {
                body(caller, std::move(*reply));
            } catch (...) {
                reply->returnError(to_dbus_error(std::current_exception()));
            }
        });
}

/// @brief when_authorized() for one action on the object that `details` names.
template <typename... Results, typename Body>
void when_authorized(Authorizer& authorizer, const Caller& caller, const Liveness& alive,
                     sdbus::Result<Results...>&& result, Action action,
                     const std::map<std::string, std::string>& details, Body body) {
    when_authorized(authorizer, caller, alive, std::move(result), std::vector<Permission>{{action, details}},
                    std::move(body));
}

/// @brief when_authorized() for a method whose work is quick: `body(caller)` returns the results (or
/// nothing), which are sent as the reply.
template <typename... Results, typename Body>
void reply_when_authorized(Authorizer& authorizer, const Caller& caller, const Liveness& alive,
                           sdbus::Result<Results...>&& result, std::vector<Permission> needed, Body body) {
    when_authorized(authorizer, caller, alive, std::move(result), std::move(needed),
                    [body = std::move(body)](const Caller& who, sdbus::Result<Results...>&& reply) mutable {
                        if constexpr (sizeof...(Results) == 0) {
                            body(who);
                            reply.returnResults();
                        } else {
                            reply.returnResults(body(who));
                        }
                    });
}

template <typename... Results, typename Body>
void reply_when_authorized(Authorizer& authorizer, const Caller& caller, const Liveness& alive,
                           sdbus::Result<Results...>&& result, Action action,
                           const std::map<std::string, std::string>& details, Body body) {
    reply_when_authorized(authorizer, caller, alive, std::move(result),
                          std::vector<Permission>{{action, details}}, std::move(body));
}

} // namespace vmstor::daemon
