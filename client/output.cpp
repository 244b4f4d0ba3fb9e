#include "output.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

#include <fmt/format.h>

#include "common/size.hpp"

namespace vmstor::client {

namespace {

const std::set<std::string_view> size_properties = {"Capacity",    "Allocation",  "Available", "Physical",
                                                    "VirtualSize", "VMStateSize", "Bytes",     "BytesDone"};
const std::set<std::string_view> fraction_properties = {"Overcommit", "Progress", "Thresholds"};

std::string percent(double fraction) {
    double value = fraction * 100.0;
    if (value == std::round(value))
        return fmt::format("{:.0f}%", value);
    return fmt::format("{:.1f}%", value);
}

std::string display_scalar(std::string_view property, const nlohmann::json& value) {
    if (value.is_boolean())
        return value.get<bool>() ? "yes" : "no";
    if (value.is_string()) {
        auto text = value.get<std::string>();
        return text.empty() ? "-" : text;
    }
    if (value.is_number_unsigned() && size_properties.contains(property))
        return format_size(value.get<std::uint64_t>());
    if (value.is_number() && fraction_properties.contains(property))
        return percent(value.get<double>());
    if (value.is_null())
        return "-";
    return value.dump();
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& part : parts) {
        if (!out.empty())
            out += separator;
        out += part;
    }
    return out;
}

std::string string_field(const nlohmann::json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() ? display_value(key, *it) : "-";
}

std::vector<const nlohmann::json*> sorted_by_name(const nlohmann::json& objects) {
    std::vector<const nlohmann::json*> sorted;
    for (const auto& object : objects)
        sorted.push_back(&object);
    std::stable_sort(sorted.begin(), sorted.end(), [](const nlohmann::json* a, const nlohmann::json* b) {
        return a->value("Name", "") < b->value("Name", "");
    });
    return sorted;
}

/// @brief "2026-11-22 01:05:06 UTC" from microseconds since the epoch.
std::string utc_time(std::uint64_t microseconds) {
    auto seconds = static_cast<std::time_t>(microseconds / 1000000);
    std::tm parts{};
    gmtime_r(&seconds, &parts);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts);
    return text;
}

} // namespace

std::string render_table(const Table& table) {
    std::vector<std::size_t> widths;
    for (const auto& column : table.columns)
        widths.push_back(column.header.size());
    for (const auto& row : table.rows)
        for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i)
            widths[i] = std::max(widths[i], row[i].size());

    auto render_row = [&](auto cell_at) {
        std::string line;
        for (std::size_t i = 0; i < table.columns.size(); ++i) {
            std::string cell = cell_at(i);
            bool last = i + 1 == table.columns.size();
            std::string padding(widths[i] - cell.size(), ' ');
            if (i > 0)
                line += "  ";
            if (table.columns[i].align_right)
                line += padding + cell;
            else
                line += last ? cell : cell + padding;
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        return line + "\n";
    };

    std::string out = render_row([&](std::size_t i) { return table.columns[i].header; });
    for (const auto& row : table.rows)
        out += render_row([&](std::size_t i) { return i < row.size() ? row[i] : std::string(); });
    return out;
}

std::string render_fields(const Fields& fields) {
    std::size_t width = 0;
    for (const auto& [label, value] : fields)
        width = std::max(width, label.size() + 1);
    std::string out;
    for (const auto& [label, value] : fields)
        out += fmt::format("{:<{}} {}\n", label + ":", width, value);
    return out;
}

std::string render_sections(const nlohmann::json& document) {
    std::string out;
    for (const auto& [key, value] : document.items()) {
        if (!value.is_object() || value.empty()) {
            out += key + ": " + display_value(key, value) + "\n";
            continue;
        }
        Fields fields;
        for (const auto& [name, item] : value.items())
            fields.emplace_back(name, display_value(name, item));
        out += key + "\n";
        std::string body = render_fields(fields);
        for (std::size_t start = 0; start < body.size();) {
            auto end = body.find('\n', start);
            out += "  " + body.substr(start, end - start + 1);
            start = end + 1;
        }
    }
    return out;
}

std::string display_value(std::string_view property, const nlohmann::json& value) {
    if (value.is_array()) {
        if (value.empty())
            return "-";
        std::vector<std::string> parts;
        for (const auto& item : value) {
            // A struct inside a list, such as BackingChain's (path, format): "path (format)".
            if (item.is_array() && item.size() == 2)
                parts.push_back(display_value(property, item[0]) + " (" + display_value(property, item[1]) +
                                ")");
            else
                parts.push_back(display_value(property, item));
        }
        return join(parts, ", ");
    }
    if (value.is_object()) {
        if (value.empty())
            return "-";
        std::vector<std::string> parts;
        for (const auto& [key, item] : value.items()) {
            // A list inside a dictionary is bracketed so that its commas do not read as the next key.
            bool bracket = item.is_array() && !item.empty();
            auto shown = display_value(property, item);
            parts.push_back(key + "=" + (bracket ? "[" + shown + "]" : shown));
        }
        return join(parts, ", ");
    }
    return display_scalar(property, value);
}

Fields object_fields(const nlohmann::json& object, const std::vector<std::string>& order) {
    Fields fields;
    for (const auto& name : order)
        if (object.contains(name))
            fields.emplace_back(name, display_value(name, object.at(name)));
    for (const auto& [name, value] : object.items()) {
        bool listed = std::find(order.begin(), order.end(), name) != order.end();
        if (!listed && name != "ObjectPath")
            fields.emplace_back(name, display_value(name, value));
    }
    if (object.contains("ObjectPath"))
        fields.emplace_back("ObjectPath", display_value("ObjectPath", object.at("ObjectPath")));
    return fields;
}

Table pool_table(const nlohmann::json& pools) {
    Table table{{{"NAME"},
                 {"TYPE"},
                 {"STATE"},
                 {"AUTOSTART"},
                 {"CAPACITY", true},
                 {"ALLOCATION", true},
                 {"AVAILABLE", true}},
                {}};
    for (const auto* pool : sorted_by_name(pools))
        table.rows.push_back({string_field(*pool, "Name"), string_field(*pool, "Type"),
                              string_field(*pool, "State"), string_field(*pool, "Autostart"),
                              string_field(*pool, "Capacity"), string_field(*pool, "Allocation"),
                              string_field(*pool, "Available")});
    return table;
}

Table volume_table(const nlohmann::json& volumes) {
    Table table{{{"NAME"}, {"FORMAT"}, {"CAPACITY", true}, {"ALLOCATION", true}, {"PATH"}}, {}};
    for (const auto* volume : sorted_by_name(volumes))
        table.rows.push_back({string_field(*volume, "Name"), string_field(*volume, "Format"),
                              string_field(*volume, "Capacity"), string_field(*volume, "Allocation"),
                              string_field(*volume, "Path")});
    return table;
}

Table job_table(const nlohmann::json& jobs, const std::function<std::string(std::uint32_t)>& user_name) {
    Table table{{{"JOB"}, {"OPERATION"}, {"STATE"}, {"PROGRESS", true}, {"RATE", true}, {"STARTED BY"}}, {}};
    for (const auto& job : jobs) {
        bool progress_known = job.value("ProgressValid", false);
        auto rate = job.value("Rate", std::uint64_t{0});
        auto uid = job.find("StartedByUID");
        table.rows.push_back(
            {string_field(job, "ObjectPath"), string_field(job, "Operation"), string_field(job, "State"),
             progress_known ? string_field(job, "Progress") : "-", rate != 0 ? format_size(rate) + "/s" : "-",
             uid != job.end() ? user_name(uid->get<std::uint32_t>()) : "-"});
    }
    return table;
}

Table snapshot_table(const nlohmann::json& snapshots) {
    Table table{{{"ID"}, {"NAME"}, {"VM STATE", true}, {"VIRTUAL SIZE", true}, {"CREATED"}}, {}};
    for (const auto* snapshot : sorted_by_name(snapshots)) {
        auto created_us = snapshot->value("Created", std::uint64_t{0});
        table.rows.push_back({string_field(*snapshot, "Id"), string_field(*snapshot, "Name"),
                              string_field(*snapshot, "VMStateSize"), string_field(*snapshot, "VirtualSize"),
                              created_us != 0 ? utc_time(created_us) : "-"});
    }
    return table;
}

const std::vector<std::string>& pool_property_order() {
    static const std::vector<std::string> order = {
        "Name",     "UUID",       "Type",      "State",      "Active", "Persistent", "Autostart",
        "Capacity", "Allocation", "Available", "TargetPath", "Source", "Overcommit", "Thresholds"};
    return order;
}

const std::vector<std::string>& volume_property_order() {
    static const std::vector<std::string> order = {"Name",         "Pool",      "Path",       "Key",
                                                   "Format",       "Capacity",  "Allocation", "Physical",
                                                   "BackingChain", "Encrypted", "UsedBy",     "Locked"};
    return order;
}

std::string error_line(std::string_view error_name, std::string_view message) {
    auto dot = error_name.rfind('.');
    std::string_view short_name = dot == std::string_view::npos ? error_name : error_name.substr(dot + 1);
    return fmt::format("vmstorctl: {}: {}", short_name, message);
}

} // namespace vmstor::client
