// Text for people: aligned tables, "Field: value" lists, property values in readable units, error lines.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace vmstor::client {

struct Column {
    std::string header;
    bool align_right = false;
};

struct Table {
    std::vector<Column> columns;
    std::vector<std::vector<std::string>> rows;
};

using Fields = std::vector<std::pair<std::string, std::string>>;

/// @brief Columns padded to their widest cell, two spaces apart, no trailing blanks; one line per row
/// after the header line. Rows shorter than the header get empty cells.
std::string render_table(const Table& table);

/// @brief "Label:  value" lines with the values aligned.
std::string render_fields(const Fields& fields);

/// @brief A property's value for people: sizes with binary units, fractions as percentages, booleans as
/// yes/no, lists comma-separated, dictionaries as key=value, "-" for nothing.
std::string display_value(std::string_view property, const nlohmann::json& value);

/// @brief One section per key of `document`: the key on its own line, then its value's fields indented
/// when the value is a dictionary; "key: value" otherwise. Keys in order.
std::string render_sections(const nlohmann::json& document);

/// @brief The fields of an object's properties: first those named in `order` (when present), then the
/// others by name; `ObjectPath` last.
Fields object_fields(const nlohmann::json& object, const std::vector<std::string>& order);

/// @brief The pool table of `vmstorctl pool-list` from pool objects (properties plus ObjectPath).
Table pool_table(const nlohmann::json& pools);

/// @brief The volume table of `vmstorctl vol-list` from volume objects.
Table volume_table(const nlohmann::json& volumes);

/// @brief The job table of `vmstorctl job-list` from job objects; `user_name` names StartedByUID.
Table job_table(const nlohmann::json& jobs, const std::function<std::string(std::uint32_t)>& user_name);

/// @brief The snapshot table of `vmstorctl snapshot-list` from snapshot objects.
Table snapshot_table(const nlohmann::json& snapshots);

/// @brief The property order of `vmstorctl pool-info`, as in dbus-api.md.
const std::vector<std::string>& pool_property_order();

/// @brief The property order of `vmstorctl vol-info`, as in dbus-api.md.
const std::vector<std::string>& volume_property_order();

/// @brief "vmstorctl: NotFound: message": a D-Bus error name shortened to its last component.
std::string error_line(std::string_view error_name, std::string_view message);

} // namespace vmstor::client
