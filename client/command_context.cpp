#include "command_context.hpp"

#include <iostream>

#include "bus.hpp"
#include "common/error.hpp"
#include "common/size.hpp"
#include "dbus_json.hpp"

namespace vmstor::client {

sdbus::IConnection& CommandContext::bus() {
    if (!connection_)
        connection_ = connect_to_bus(use_session_bus);
    return *connection_;
}

void CommandContext::print(const nlohmann::json& document, const std::function<std::string()>& text) const {
    if (json)
        std::cout << document.dump(2) << "\n";
    else
        std::cout << text();
}

void CommandContext::print_created(const std::string& path) const {
    print(nlohmann::json{{"ObjectPath", path}}, [&] { return path + "\n"; });
}

void show_properties(CommandContext& context, const std::string& path, const std::string& interface,
                     const std::string& what_is_missing, const std::vector<std::string>& order) {
    nlohmann::json properties;
    translating_unknown_object(what_is_missing, [&] {
        properties = properties_to_json(PropertiesProxy(context.bus(), path).GetAll(interface));
    });
    properties["ObjectPath"] = path;
    context.print(properties, [&] { return render_fields(object_fields(properties, order)); });
}

std::shared_ptr<VolumeName> add_volume_name(CLI::App& command) {
    auto name = std::make_shared<VolumeName>();
    command.add_option("POOL", name->pool, "Pool name")->required();
    command.add_option("VOL", name->volume, "Volume name")->required();
    return name;
}

std::string volume_missing(const VolumeName& name) {
    return "volume '" + name.volume + "' does not exist in pool '" + name.pool + "'";
}

CLI::Validator size_validator() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            try {
                parse_size(text);
                return {};
            } catch (const Error& error) {
                return error.what();
            }
        },
        "SIZE");
}

void translating_unknown_object(const std::string& what_is_missing, const std::function<void()>& call) {
    try {
        call();
    } catch (const sdbus::Error& error) {
        if (error.getName() == "org.freedesktop.DBus.Error.UnknownObject")
            throw Error(ErrorCode::NotFound, what_is_missing);
        throw;
    }
}

} // namespace vmstor::client
