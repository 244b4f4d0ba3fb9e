#include "authorizer.hpp"

#include "caller.hpp"
#include "common/error.hpp"

#include <chrono>
#include <fmt/format.h>
#include <optional>
#include <sdbus-c++/Error.h>
#include <sdbus-c++/Message.h>
#include <sdbus-c++/Types.h>
#include <spdlog/spdlog.h>
#include <utility>

namespace vmstor::daemon {

namespace {
constexpr const char* polkit_name = "org.freedesktop.PolicyKit1";
constexpr const char* polkit_path = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* polkit_interface = "org.freedesktop.PolicyKit1.Authority";
// polkit answers at once when no interaction is asked for; this bounds a hung polkitd. With interaction it
// waits for the user to authenticate with their agent; only the asynchronous check() asks for that.
constexpr std::chrono::seconds polkit_timeout{10};
constexpr std::chrono::seconds interactive_timeout{120};
// CheckAuthorization's flag AllowUserInteraction.
constexpr std::uint32_t allow_user_interaction = 1;
using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
using Verdict = sdbus::Struct<bool, bool, std::map<std::string, std::string>>;

Subject subject_of(const Caller& caller) {
    return {"system-bus-name", {{"name", sdbus::Variant(caller.sender)}}};
}

vmstor::Error refusal(const Caller& caller, Action action, const std::string& why) {
    return vmstor::Error(ErrorCode::NotAuthorized,
                         fmt::format("{} needs the polkit action {}, and uid {} {}", caller.member,
                                     action_id(action), caller.uid, why));
}

/// @brief Why polkit's answer refuses, or nullopt when it allows.
std::optional<std::string> verdict_refusal(const Verdict& verdict, bool interactive) {
    bool authorized = verdict.get<0>();
    bool challenge = verdict.get<1>();
    if (authorized)
        return std::nullopt;
    if (interactive)
        return challenge ? "did not authenticate" : "is not allowed it by the polkit rules";
    return challenge ? "would have to authenticate, and the call did not allow interactive authorization (or "
                       "set auth.no_user_interaction)"
                     : "is not allowed it by the polkit rules";
}

constexpr const char* unreachable_why = "polkit, which decides for callers other than root, did not answer";

} // namespace

Caller Caller::of(const sdbus::IObject& object) {
    const sdbus::Message* message = object.getCurrentlyProcessedMessage();
    return message ? of(*message) : Caller();
}

Caller Caller::of(const sdbus::Message& message) {
    Caller caller;
    caller.internal = false;
    caller.sender = message.getSender();
    try {
        caller.uid = message.getCredsUid();
    } catch (const sdbus::Error&) {
    }
    caller.interactive = caller_allows_interaction(message);
    caller.member = fmt::format("{}.{}", message.getInterfaceName(), message.getMemberName());
    return caller;
}

std::string_view action_id(Action action) {
    switch (action) {
    case Action::Read:
        return "org.vmstor.storage1.read";
    case Action::ManageVolumes:
        return "org.vmstor.storage1.manage-volumes";
    case Action::ManagePools:
        return "org.vmstor.storage1.manage-pools";
    case Action::ManageSnapshots:
        return "org.vmstor.storage1.manage-snapshots";
    }
    return "org.vmstor.storage1.manage-pools";
}

Authorizer::Authorizer(sdbus::IConnection& bus)
    : bus_(bus), polkit_(sdbus::createProxy(bus, polkit_name, polkit_path)) {}

void Authorizer::require(const Caller& caller, Action action,
                         const std::map<std::string, std::string>& details) {
    if (caller.internal || caller.uid == 0)
        return;
    std::string id(action_id(action));
    spdlog::debug("asking polkit whether {} (uid {}) may do {} for {}, without interaction", caller.sender,
                  caller.uid, id, caller.member);
    Verdict verdict;
    try {
        polkit_->callMethod("CheckAuthorization")
            .onInterface(polkit_interface)
            .withTimeout(polkit_timeout)
            .withArguments(subject_of(caller), id, details, std::uint32_t{0}, std::string())
            .storeResultsTo(verdict);
    } catch (const sdbus::Error& e) {
        if (!std::exchange(said_unreachable_, true))
            spdlog::warn("polkit did not answer ({}: {}); only root is allowed to call vmstord", e.getName(),
                         e.getMessage());
        throw refusal(caller, action, unreachable_why);
    }
    said_unreachable_ = false;
    if (auto why = verdict_refusal(verdict, false))
        throw refusal(caller, action, *why);
}

void Authorizer::check(const Caller& caller, Action action, const std::map<std::string, std::string>& details,
                       std::function<void(std::exception_ptr refused)> done) {
    if (caller.internal || caller.uid == 0) {
        done(nullptr);
        return;
    }
    if (waiting_[caller.uid] >= max_waiting_calls_per_caller) {
        done(std::make_exception_ptr(vmstor::Error(
            ErrorCode::LimitExceeded,
            fmt::format("{}: uid {} has {} calls waiting for polkit already, the most one caller may have; "
                        "try again when they are answered",
                        caller.member, caller.uid, max_waiting_calls_per_caller))));
        return;
    }
    ++waiting_[caller.uid];
    std::string id(action_id(action));
    std::uint32_t flags = caller.interactive ? allow_user_interaction : 0;
    spdlog::debug("asking polkit whether {} (uid {}) may do {} for {}, flags {}", caller.sender, caller.uid,
                  id, caller.member, flags);
    // The reply handler runs on the main loop when polkit answers, fails or times out: exactly once. It
    // must not throw into sdbus-c++.
    polkit_->callMethodAsync("CheckAuthorization")
        .onInterface(polkit_interface)
        .withTimeout(caller.interactive ? interactive_timeout : polkit_timeout)
        .withArguments(subject_of(caller), id, details, flags, std::string())
        .uponReplyInvoke([this, caller, action, done = std::move(done)](const sdbus::Error* error,
                                                                        const Verdict& verdict) {
            if (auto waiting = waiting_.find(caller.uid); waiting != waiting_.end() && --waiting->second == 0)
                waiting_.erase(waiting);
            std::exception_ptr refused;
            if (error) {
                if (!std::exchange(said_unreachable_, true))
                    spdlog::warn("polkit did not answer ({}: {}); only root is allowed to call vmstord",
                                 error->getName(), error->getMessage());
                refused = std::make_exception_ptr(refusal(caller, action, unreachable_why));
            } else {
                said_unreachable_ = false;
                if (auto why = verdict_refusal(verdict, caller.interactive))
                    refused = std::make_exception_ptr(refusal(caller, action, *why));
            }
            try {
                done(refused);
            } catch (const std::exception& e) {
                spdlog::error("after polkit answered for {}: {}", caller.member, e.what());
            } catch (...) {
                spdlog::error("after polkit answered for {}: unknown failure", caller.member);
            }
        });
}

void Authorizer::check_all(const Caller& caller, std::vector<Permission> needed,
                           std::function<void(std::exception_ptr refused)> done) {
    if (needed.empty()) {
        done(nullptr);
        return;
    }
    Permission first = std::move(needed.front());
    needed.erase(needed.begin());
    check(caller, first.action, first.details,
          [this, caller, reason = first.reason, rest = std::move(needed),
           done = std::move(done)](std::exception_ptr refused) mutable {
              if (!refused) {
                  check_all(caller, std::move(rest), std::move(done));
                  return;
              }
              try {
                  std::rethrow_exception(refused);
              } catch (const vmstor::Error& e) {
                  if (!reason.empty() && e.code() == ErrorCode::NotAuthorized)
                      refused = std::make_exception_ptr(
                          vmstor::Error(e.code(), fmt::format("{}: {}", reason, e.what())));
              } catch (...) {
              }
              done(refused);
          });
}

} // namespace vmstor::daemon
