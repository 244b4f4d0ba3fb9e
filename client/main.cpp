// vmstorctl: the thin command-line client of vmstord's D-Bus API.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>
#include <sdbus-c++/Error.h>

#include "command_context.hpp"
#include "common/error.hpp"
#include "job_commands.hpp"
#include "job_follower.hpp"
#include "output.hpp"
#include "pool_commands.hpp"
#include "snapshot_commands.hpp"
#include "volume_commands.hpp"
#include "volume_data_commands.hpp"

namespace {

constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

} // namespace

int main(int argc, char** argv) {
    using namespace vmstor::client;
    CLI::App app{"vmstorctl: manage vmstor's storage pools and volumes over D-Bus", "vmstorctl"};
    CommandContext context;
    app.add_flag("--session", context.use_session_bus, "Use the session bus instead of the system bus");
    app.add_flag("--json", context.json, "Print JSON (sizes in bytes) instead of tables");
    app.require_subcommand(1);
    app.fallthrough(); // the global flags also work after the command
    add_pool_commands(app, context);
    add_volume_commands(app, context);
    add_volume_data_commands(app, context);
    add_snapshot_commands(app, context);
    add_job_commands(app, context);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        int code = app.exit(error);
        return code == 0 ? 0 : exit_usage;
    } catch (const Interrupted& error) {
        std::cerr << error_line(error.error_name(), error.what()) << "\n";
        return exit_interrupted;
    } catch (const sdbus::Error& error) {
        std::cerr << error_line(error.getName(), error.getMessage()) << "\n";
        return exit_failed;
    } catch (const vmstor::Error& error) {
        std::cerr << error_line(vmstor::error_code_name(error.code()), error.what()) << "\n";
        // An argument refused before anything was sent is bad usage.
        return error.code() == vmstor::ErrorCode::InvalidArgument ? exit_usage : exit_failed;
    } catch (const std::exception& error) {
        std::cerr << error_line("Failed", error.what()) << "\n";
        return exit_failed;
    }
    return context.exit_code;
}
