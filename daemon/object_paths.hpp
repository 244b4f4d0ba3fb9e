// Object paths of the API (dbus-api.md, "Names"): building them from names and reading names back.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace vmstor::daemon {

inline constexpr const char* bus_name = "org.vmstor.Storage1";
inline constexpr const char* root_path = "/org/vmstor/Storage1";

std::string pool_path(const std::string& pool);
std::string volume_path(const std::string& pool, const std::string& volume);
std::string job_path(std::uint64_t id);

/// @brief The pool name in a pool object path; throws InvalidArgument if `path` is not one.
std::string pool_name_from_path(const std::string& path);
/// @brief (pool, volume) of a volume object path; throws InvalidArgument if `path` is not one.
std::pair<std::string, std::string> volume_names_from_path(const std::string& path);

} // namespace vmstor::daemon
