#include "volume_vtable.hpp"

#include "error_boundary.hpp"
#include "object_paths.hpp"
#include "volume_bus.hpp"
#include "volume_object.hpp"
#include "volume_schedule.hpp"

#include <cerrno>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace vmstor::daemon {

// Every function sd-bus calls catches what it could throw: an exception must not cross C code.
struct VolumeVtable {
    static const sd_bus_vtable table[];

    /// @brief Reads the arguments of `call`, then runs a handler that replies through an sdbus::Result, now
    /// or once polkit (or a job) answered.
    template <typename... Results, typename... Args>
    static void dispatch(VolumeObject& volume, sdbus::MethodCall& call,
                         void (VolumeObject::*handler)(const Caller&, sdbus::Result<Results...>&&, Args...)) {
        std::tuple<std::decay_t<Args>...> args;
        std::apply([&](auto&... arg) { (call >> ... >> arg); }, args);
        Caller caller = Caller::of(call); // after the arguments: it rewinds the message to read the options
        std::apply(
            [&](auto&... arg) {
                (volume.*handler)(caller, sdbus::Result<Results...>(call), std::move(arg)...);
            },
            args);
    }

    /// @brief Reads the arguments of `call`, then replies with what the handler returns.
    template <typename Reply, typename... Args>
    static void dispatch(VolumeObject& volume, sdbus::MethodCall& call,
                         Reply (VolumeObject::*handler)(const Caller&, Args...)) {
        std::tuple<std::decay_t<Args>...> args;
        std::apply([&](auto&... arg) { (call >> ... >> arg); }, args);
        Caller caller = Caller::of(call);
        Reply results = std::apply([&](auto&... arg) { return (volume.*handler)(caller, arg...); }, args);
        auto reply = call.createReply();
        reply << results;
        reply.send();
    }

    /// @brief The method handler sd-bus calls: whatever the handler throws becomes the call's named error.
    /// Returns 1 (handled) also when the reply is deferred: the sdbus::Result holds a reference to the call.
    template <auto Handler> static int method(sd_bus_message* message, void* userdata, sd_bus_error*) {
        auto& volume = *static_cast<VolumeObject*>(userdata);
        try {
            sdbus::MethodCall call = volume.bus_.raw().method_call(message);
            try {
                dispatch(volume, call, Handler);
            } catch (...) {
                call.createErrorReply(to_dbus_error(std::current_exception())).send();
            }
            return 1;
        } catch (...) {
            return -EIO; // not even an error reply could be made: sd-bus answers with a generic one
        }
    }

    /// @brief A property getter: `Append` adds the value read from the volume's state to `reply`.
    template <auto Append>
    static int property(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                        sd_bus_error*) {
        try {
            return Append(reply, static_cast<const VolumeObject*>(userdata)->state());
        } catch (...) {
            return -ENOMEM;
        }
    }

    template <auto Field> static int text(sd_bus_message* reply, const storage::VolumeState& state) {
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_STRING, (state.*Field).c_str());
    }
    template <auto Field> static int number(sd_bus_message* reply, const storage::VolumeState& state) {
        std::uint64_t value = state.*Field;
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_UINT64, &value);
    }
    template <auto Field> static int flag(sd_bus_message* reply, const storage::VolumeState& state) {
        int value = state.*Field ? 1 : 0;
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_BOOLEAN, &value);
    }
    static int pool(sd_bus_message* reply, const storage::VolumeState& state) {
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_OBJECT_PATH, pool_path(state.pool).c_str());
    }
    static int backing_chain(sd_bus_message* reply, const storage::VolumeState& state) {
        int r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "(ss)");
        for (const auto& [path, format] : state.backing_chain)
            if (r >= 0)
                r = sd_bus_message_append(reply, "(ss)", path.c_str(), format.c_str());
        return r < 0 ? r : sd_bus_message_close_container(reply);
    }
    static int schedule(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                        sd_bus_error*) {
        try {
            const auto& volume = *static_cast<const VolumeObject*>(userdata);
            return append_schedule(reply, volume.service_.schedules().schedule({volume.pool_, volume.name_}));
        } catch (...) {
            return -ENOMEM;
        }
    }
    static int used_by(sd_bus_message* reply, const storage::VolumeState& state) {
        int r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "s");
        for (const std::string& domain : state.used_by)
            if (r >= 0)
                r = sd_bus_message_append_basic(reply, SD_BUS_TYPE_STRING, domain.c_str());
        return r < 0 ? r : sd_bus_message_close_container(reply);
    }
};

namespace {
using State = storage::VolumeState;
using V = VolumeVtable;
constexpr auto unprivileged = SD_BUS_VTABLE_UNPRIVILEGED; // polkit decides, per method (as sdbus-c++ does)
constexpr auto constant = SD_BUS_VTABLE_PROPERTY_CONST;
constexpr auto emits_change = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
} // namespace

const sd_bus_vtable VolumeVtable::table[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Name", "s", &V::property<&V::text<&State::name>>, 0, constant),
    SD_BUS_PROPERTY("Key", "s", &V::property<&V::text<&State::key>>, 0, constant),
    SD_BUS_PROPERTY("Path", "s", &V::property<&V::text<&State::path>>, 0, constant),
    SD_BUS_PROPERTY("Pool", "o", &V::property<&V::pool>, 0, constant),
    SD_BUS_PROPERTY("Format", "s", &V::property<&V::text<&State::format>>, 0, emits_change),
    SD_BUS_PROPERTY("Capacity", "t", &V::property<&V::number<&State::capacity>>, 0, emits_change),
    SD_BUS_PROPERTY("Allocation", "t", &V::property<&V::number<&State::allocation>>, 0, emits_change),
    SD_BUS_PROPERTY("Physical", "t", &V::property<&V::number<&State::physical>>, 0, emits_change),
    SD_BUS_PROPERTY("BackingChain", "a(ss)", &V::property<&V::backing_chain>, 0, emits_change),
    SD_BUS_PROPERTY("Encrypted", "b", &V::property<&V::flag<&State::encrypted>>, 0, emits_change),
    SD_BUS_PROPERTY("UsedBy", "as", &V::property<&V::used_by>, 0, emits_change),
    SD_BUS_PROPERTY("Locked", "b", &V::property<&V::flag<&State::locked>>, 0, emits_change),
    SD_BUS_PROPERTY("Schedule", "a{sv}", &V::schedule, 0, emits_change),
    SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT,
                            &V::method<&VolumeObject::Delete>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Resize", SD_BUS_ARGS("t", capacity, "a{sv}", options), SD_BUS_NO_RESULT,
                            &V::method<&VolumeObject::Resize>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Wipe", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", job),
                            &V::method<&VolumeObject::Wipe>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Download", SD_BUS_ARGS("h", fd, "a{sv}", options), SD_BUS_RESULT("o", job),
                            &V::method<&VolumeObject::Download>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Upload", SD_BUS_ARGS("h", fd, "a{sv}", options), SD_BUS_RESULT("o", job),
                            &V::method<&VolumeObject::Upload>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Check", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("a{sv}", result),
                            &V::method<&VolumeObject::Check>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Info", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("s", json),
                            &V::method<&VolumeObject::Info>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Convert", SD_BUS_ARGS("o", pool, "s", name, "a{sv}", options),
                            SD_BUS_RESULT("o", job), &V::method<&VolumeObject::Convert>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("CreateSnapshot", SD_BUS_ARGS("s", name, "a{sv}", options),
                            SD_BUS_RESULT("o", snapshot), &V::method<&VolumeObject::CreateSnapshot>,
                            unprivileged),
    SD_BUS_METHOD_WITH_ARGS("CreateOverlay", SD_BUS_ARGS("s", name, "a{sv}", options),
                            SD_BUS_RESULT("o", volume), &V::method<&VolumeObject::CreateOverlay>,
                            unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Commit", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", job),
                            &V::method<&VolumeObject::Commit>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Rebase", SD_BUS_ARGS("s", backing, "a{sv}", options), SD_BUS_RESULT("o", job),
                            &V::method<&VolumeObject::Rebase>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Measure", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("a{sv}", result),
                            &V::method<&VolumeObject::Measure>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("Map", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("aa{sv}", extents),
                            &V::method<&VolumeObject::Map>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("SetSchedule", SD_BUS_ARGS("a{sv}", schedule, "a{sv}", options), SD_BUS_NO_RESULT,
                            &V::method<&VolumeObject::SetSchedule>, unprivileged),
    SD_BUS_METHOD_WITH_ARGS("RunSchedule", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", job),
                            &V::method<&VolumeObject::RunSchedule>, unprivileged),
    SD_BUS_VTABLE_END,
};

const sd_bus_vtable* volume_vtable() {
    return VolumeVtable::table;
}

} // namespace vmstor::daemon
