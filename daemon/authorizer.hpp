// Per-caller authorization: every method that reads or changes something asks polkit whether the
// caller may (org.freedesktop.PolicyKit1.Authority.CheckAuthorization on the caller's bus name).
#pragma once

#include <map>
#include <memory>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IObject.h>
#include <sdbus-c++/IProxy.h>
#include <string>
#include <string_view>

namespace vmstor::daemon {

/// @brief The polkit actions of dbus/org.vmstor.storage1.policy.
enum class Action { Read, ManageVolumes, ManagePools, ManageSnapshots };
std::string_view action_id(Action action);

class Authorizer {
  public:
    explicit Authorizer(sdbus::IConnection& bus);

    /// @brief Throws NotAuthorized unless the sender of the message `object` is handling may do
    /// `action`. Root is always allowed; when polkit does not answer, only root is (logged once).
    /// polkit may ask the user to authenticate only when the message allows interactive authorization
    /// and its options do not set auth.no_user_interaction.
    void require(const sdbus::IObject& object, Action action,
                 const std::map<std::string, std::string>& details);

  private:
    sdbus::IConnection& bus_;
    std::unique_ptr<sdbus::IProxy> polkit_;
    bool said_unreachable_ = false;
};

} // namespace vmstor::daemon
