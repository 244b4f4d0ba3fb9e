// Per-caller authorization: every method that reads or changes something asks polkit whether the
// caller may (org.freedesktop.PolicyKit1.Authority.CheckAuthorization on the caller's bus name).
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IObject.h>
#include <sdbus-c++/IProxy.h>
#include <sdbus-c++/Message.h>
#include <string>
#include <string_view>
#include <vector>

namespace vmstor::daemon {

/// @brief The polkit actions of dbus/org.vmstor.storage1.policy.
enum class Action { Read, ManageVolumes, ManagePools, ManageSnapshots };
std::string_view action_id(Action action);

/// @brief Who made the D-Bus call an object is handling, read while its handler runs: a continuation that
/// runs later (after polkit answered) has no current message to ask.
struct Caller {
    bool internal = true; ///< not inside a D-Bus call: the daemon itself, always allowed
    std::string sender;
    std::uint32_t uid = UINT32_MAX; ///< UINT32_MAX when the bus cannot tell
    /// The message allows interactive authorization and its options do not set auth.no_user_interaction.
    bool interactive = false;
    std::string member; ///< Interface.Member, for messages

    /// @brief The caller of the message `object` is handling; the daemon itself outside of a handler.
    static Caller of(const sdbus::IObject& object);
    /// @brief The caller of `message`, a method call whose arguments were read already.
    static Caller of(const sdbus::Message& message);
    /// @brief This caller, never prompted to authenticate (reads and property setters do not prompt).
    Caller without_interaction() const {
        Caller caller = *this;
        caller.interactive = false;
        return caller;
    }
    /// @brief True when the caller's account has `gid` as its primary or a supplementary group.
    bool in_group(std::uint32_t gid) const;
};

/// @brief One thing a call needs: an action on the object that `details` names (pool, volume...).
struct Permission {
    Action action;
    std::map<std::string, std::string> details;
    std::string reason = {}; ///< why the call needs it, put before polkit's refusal when not empty
};

/// Calls of one caller other than root that may wait for polkit at once: each holds its arguments (file
/// descriptors too) until polkit answers, which can take minutes when it asks the user.
inline constexpr std::size_t max_waiting_calls_per_caller = 32;

class Authorizer {
  public:
    explicit Authorizer(sdbus::IConnection& bus);

    /// @brief Throws NotAuthorized unless the caller may do `action`. Root is always allowed; when polkit
    /// does not answer, only root is (logged once). Waits for polkit on the bus thread, so it never lets
    /// polkit ask the user to authenticate (that can take minutes): methods that may need it use check().
    void require(const Caller& caller, Action action, const std::map<std::string, std::string>& details);
    void require(const Caller& caller, const Permission& needed) {
        require(caller, needed.action, needed.details);
    }
    void require(const sdbus::IObject& object, Action action,
                 const std::map<std::string, std::string>& details) {
        require(Caller::of(object), action, details);
    }

    /// @brief Asks polkit without waiting for it: the bus goes on serving other calls while the user
    /// authenticates. `done` runs exactly once, on the main loop (at once for root and the daemon itself),
    /// with nullptr when the caller may do `action`, else with the NotAuthorized error. polkit may ask the
    /// user to authenticate when the caller allows interaction.
    void check(const Caller& caller, Action action, const std::map<std::string, std::string>& details,
               std::function<void(std::exception_ptr refused)> done);
    /// @brief check() for each permission in turn (a call that reads one volume and creates another needs
    /// both); `done` runs once, with the first refusal or nullptr when all are granted.
    void check_all(const Caller& caller, std::vector<Permission> needed,
                   std::function<void(std::exception_ptr refused)> done);

  private:
    sdbus::IConnection& bus_;
    std::unique_ptr<sdbus::IProxy> polkit_;
    bool said_unreachable_ = false;
    std::map<std::uint32_t, std::size_t> waiting_; ///< calls waiting for polkit, by caller uid
};

} // namespace vmstor::daemon
