// D-Bus values as JSON: the client's one generic representation of what the daemon sends.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <sdbus-c++/Types.h>

namespace vmstor::client {

using PropertyMap = std::map<std::string, sdbus::Variant>;
/// @brief What ObjectManager.GetManagedObjects answers: path -> interface -> properties.
using ManagedObjects = std::map<sdbus::ObjectPath, std::map<std::string, PropertyMap>>;

/// @brief The value a variant holds, as JSON: numbers stay numbers (sizes in bytes), object paths and
/// signatures become strings, dictionaries objects, arrays and structs arrays, nested variants their value.
/// Throws vmstor::Error NotSupported for a D-Bus type the client does not know how to show.
nlohmann::json variant_to_json(const sdbus::Variant& value);

/// @brief A property map (or any a{sv}) as a JSON object.
nlohmann::json properties_to_json(const PropertyMap& properties);

/// @brief The objects that have `interface`, each as its properties of that interface plus "ObjectPath".
nlohmann::json objects_with_interface(const ManagedObjects& objects, const std::string& interface);

} // namespace vmstor::client
