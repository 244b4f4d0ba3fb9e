#include "image_reports.hpp"

#include <fmt/format.h>

#include "output.hpp"

namespace vmstor::client {

namespace {

std::uint64_t count(const nlohmann::json& result, const char* field) {
    auto it = result.find(field);
    // Signed or unsigned alike (D-Bus t or x), negative as nothing.
    if (it == result.end() || !it->is_number_integer() ||
        (!it->is_number_unsigned() && it->get<std::int64_t>() < 0))
        return 0;
    return it->get<std::uint64_t>();
}

double percent_of(std::uint64_t part, std::uint64_t whole) {
    return whole == 0 ? 0.0 : static_cast<double>(part) * 100.0 / static_cast<double>(whole);
}

std::string cell(const nlohmann::json& extent, const char* key) {
    auto it = extent.find(key);
    if (it == extent.end())
        return "-";
    if (it->is_boolean())
        return it->get<bool>() ? "yes" : "no";
    return it->is_string() ? it->get<std::string>() : it->dump();
}

} // namespace

std::string check_report_text(const nlohmann::json& result) {
    std::string out;
    for (const auto& message : result.value("messages", nlohmann::json::array()))
        out += message.get<std::string>() + "\n";
    auto corruptions = count(result, "corruptions");
    auto leaks = count(result, "leaks");
    auto check_errors = count(result, "check-errors");
    auto corruptions_fixed = count(result, "corruptions-fixed");
    auto leaks_fixed = count(result, "leaks-fixed");
    if (corruptions_fixed != 0 || leaks_fixed != 0)
        out += fmt::format("The following inconsistencies were found and repaired:\n\n"
                           "    {} leaked clusters\n    {} corruptions\n\n"
                           "Double checking the fixed image now...\n",
                           leaks_fixed, corruptions_fixed);
    if (corruptions == 0 && leaks == 0 && check_errors == 0)
        out += "No errors were found on the image.\n";
    if (corruptions != 0)
        out += fmt::format("\n{} errors were found on the image.\n"
                           "Data may be corrupted, or further writes to the image may corrupt it.\n",
                           corruptions);
    if (leaks != 0)
        out += fmt::format("\n{} leaked clusters were found on the image.\n"
                           "This means waste of disk space, but no harm to data.\n",
                           leaks);
    if (check_errors != 0)
        out += fmt::format("\n{} internal errors have occurred during the check.\n", check_errors);
    auto total = count(result, "total-clusters");
    auto allocated = count(result, "allocated-clusters");
    if (total != 0 && allocated != 0)
        out += fmt::format("{}/{} = {:.2f}% allocated, {:.2f}% fragmented, {:.2f}% compressed clusters\n",
                           allocated, total, percent_of(allocated, total),
                           percent_of(count(result, "fragmented-clusters"), allocated),
                           percent_of(count(result, "compressed-clusters"), allocated));
    if (auto end = count(result, "image-end-offset"); end != 0)
        out += fmt::format("Image end offset: {}\n", end);
    return out;
}

int check_exit_code(const nlohmann::json& result) {
    if (count(result, "check-errors") != 0)
        return 1;
    if (count(result, "corruptions") != 0)
        return 2;
    if (count(result, "leaks") != 0)
        return 3;
    return 0;
}

std::string measure_report_text(const nlohmann::json& result) {
    return fmt::format("required size: {}\nfully allocated size: {}\n", count(result, "required"),
                       count(result, "fully-allocated"));
}

std::string map_report_text(const nlohmann::json& extents) {
    Table table{{{"START", true},
                 {"LENGTH", true},
                 {"DEPTH", true},
                 {"PRESENT"},
                 {"ZERO"},
                 {"DATA"},
                 {"COMPRESSED"},
                 {"OFFSET", true}},
                {}};
    for (const auto& extent : extents)
        table.rows.push_back({cell(extent, "start"), cell(extent, "length"), cell(extent, "depth"),
                              cell(extent, "present"), cell(extent, "zero"), cell(extent, "data"),
                              cell(extent, "compressed"), cell(extent, "offset")});
    return render_table(table);
}

} // namespace vmstor::client
