// The answers of Volume.Check, Measure and Map for people, in the manner of qemu-img's human output.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace vmstor::client {

/// @brief What `qemu-img check` prints for a result with its JSON field names (check-errors, corruptions,
/// leaks, corruptions-fixed, leaks-fixed, total-clusters, allocated-clusters, ..., messages).
std::string check_report_text(const nlohmann::json& result);

/// @brief The exit code `qemu-img check` gives for such a result: 1 when the check itself failed,
/// 2 for corruptions, 3 for leaks only, 0 for a clean image.
int check_exit_code(const nlohmann::json& result);

/// @brief "required size: N" and "fully allocated size: N", as `qemu-img measure` prints them.
std::string measure_report_text(const nlohmann::json& result);

/// @brief Volume.Map's extents (qemu-img map's JSON keys) as a table, one row per extent.
std::string map_report_text(const nlohmann::json& extents);

} // namespace vmstor::client
