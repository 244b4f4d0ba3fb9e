// What every command shares: the global flags, the bus connection (opened on first use) and printing.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include "output.hpp"

namespace vmstor::client {

class CommandContext {
  public:
    bool use_session_bus = false;
    bool json = false;
    /// @brief The exit status of a command that succeeded but has more to say (vol-check's findings).
    int exit_code = 0;

    /// @brief The bus connection, opened on first use.
    sdbus::IConnection& bus();

    /// @brief Prints a JSON document (with --json) or, for people, the given text.
    void print(const nlohmann::json& document, const std::function<std::string()>& text) const;

    /// @brief Prints the path of an object a command made: the path for people, {"ObjectPath": ...} as JSON.
    void print_created(const std::string& path) const;

  private:
    std::unique_ptr<sdbus::IConnection> connection_;
};

/// @brief Prints all properties of `interface` of the object at `path` (one GetAll call), plus its
/// ObjectPath: fields in `order` for people, an object with --json.
void show_properties(CommandContext& context, const std::string& path, const std::string& interface,
                     const std::string& what_is_missing, const std::vector<std::string>& order);

/// @brief A volume named on the command line: POOL VOL.
struct VolumeName {
    std::string pool;
    std::string volume;
};

/// @brief Adds the POOL and VOL positionals to a command.
std::shared_ptr<VolumeName> add_volume_name(CLI::App& command);

/// @brief "volume 'v' does not exist in pool 'p'".
std::string volume_missing(const VolumeName& name);

/// @brief Accepts what vmstor::parse_size accepts ("10G", "512M", "4096").
CLI::Validator size_validator();

/// @brief Runs `call`; an UnknownObject answer (no such object on the bus) becomes a NotFound error
/// whose message is `what_is_missing` (e.g. "pool 'p1' does not exist").
void translating_unknown_object(const std::string& what_is_missing, const std::function<void()>& call);

} // namespace vmstor::client
