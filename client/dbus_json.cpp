#include "dbus_json.hpp"

#include <cstdint>
#include <tuple>
#include <vector>

#include "common/error.hpp"

namespace vmstor::client {

namespace {

template <typename T> nlohmann::json plain(const sdbus::Variant& value) {
    return value.get<T>();
}

template <typename T> nlohmann::json array_of(const sdbus::Variant& value) {
    nlohmann::json result = nlohmann::json::array();
    for (const auto& item : value.get<std::vector<T>>())
        result.push_back(item);
    return result;
}

template <typename T> nlohmann::json string_keyed_dict_of(const sdbus::Variant& value) {
    nlohmann::json result = nlohmann::json::object();
    for (const auto& [key, item] : value.get<std::map<std::string, T>>())
        result[key] = item;
    return result;
}

nlohmann::json array_of_variants(const std::vector<sdbus::Variant>& items) {
    nlohmann::json result = nlohmann::json::array();
    for (const auto& item : items)
        result.push_back(variant_to_json(item));
    return result;
}

} // namespace

nlohmann::json variant_to_json(const sdbus::Variant& value) {
    const std::string type = value.peekValueType();
    // Basic types.
    if (type == "s")
        return plain<std::string>(value);
    if (type == "o")
        return std::string(value.get<sdbus::ObjectPath>());
    if (type == "g")
        return std::string(value.get<sdbus::Signature>());
    if (type == "b")
        return plain<bool>(value);
    if (type == "y")
        return plain<std::uint8_t>(value);
    if (type == "n")
        return plain<std::int16_t>(value);
    if (type == "q")
        return plain<std::uint16_t>(value);
    if (type == "i")
        return plain<std::int32_t>(value);
    if (type == "u")
        return plain<std::uint32_t>(value);
    if (type == "x")
        return plain<std::int64_t>(value);
    if (type == "t")
        return plain<std::uint64_t>(value);
    if (type == "d")
        return plain<double>(value);
    if (type == "v")
        return variant_to_json(value.get<sdbus::Variant>());
    // The containers the API uses (dbus-api.md), and their obvious neighbours.
    if (type == "as")
        return array_of<std::string>(value);
    if (type == "ao") {
        nlohmann::json result = nlohmann::json::array();
        for (const auto& path : value.get<std::vector<sdbus::ObjectPath>>())
            result.push_back(std::string(path));
        return result;
    }
    if (type == "ab")
        return array_of<bool>(value);
    if (type == "ay")
        return array_of<std::uint8_t>(value);
    if (type == "ai")
        return array_of<std::int32_t>(value);
    if (type == "au")
        return array_of<std::uint32_t>(value);
    if (type == "ax")
        return array_of<std::int64_t>(value);
    if (type == "at")
        return array_of<std::uint64_t>(value);
    if (type == "ad")
        return array_of<double>(value);
    if (type == "av")
        return array_of_variants(value.get<std::vector<sdbus::Variant>>());
    if (type == "a{sv}")
        return properties_to_json(value.get<PropertyMap>());
    if (type == "aa{sv}") {
        nlohmann::json result = nlohmann::json::array();
        for (const auto& map : value.get<std::vector<PropertyMap>>())
            result.push_back(properties_to_json(map));
        return result;
    }
    if (type == "a{ss}")
        return string_keyed_dict_of<std::string>(value);
    if (type == "a{sd}")
        return string_keyed_dict_of<double>(value);
    if (type == "a{st}")
        return string_keyed_dict_of<std::uint64_t>(value);
    if (type == "a{su}")
        return string_keyed_dict_of<std::uint32_t>(value);
    if (type == "a{sb}")
        return string_keyed_dict_of<bool>(value);
    if (type == "a(ss)") {
        nlohmann::json result = nlohmann::json::array();
        for (const auto& pair : value.get<std::vector<sdbus::Struct<std::string, std::string>>>())
            result.push_back({std::get<0>(pair), std::get<1>(pair)});
        return result;
    }
    throw Error(ErrorCode::NotSupported, "vmstorctl cannot show a D-Bus value of type '" + type + "'");
}

nlohmann::json properties_to_json(const PropertyMap& properties) {
    nlohmann::json result = nlohmann::json::object();
    for (const auto& [name, value] : properties)
        result[name] = variant_to_json(value);
    return result;
}

nlohmann::json objects_with_interface(const ManagedObjects& objects, const std::string& interface) {
    nlohmann::json result = nlohmann::json::array();
    for (const auto& [path, interfaces] : objects) {
        auto found = interfaces.find(interface);
        if (found == interfaces.end())
            continue;
        nlohmann::json object = properties_to_json(found->second);
        object["ObjectPath"] = std::string(path);
        result.push_back(std::move(object));
    }
    return result;
}

} // namespace vmstor::client
