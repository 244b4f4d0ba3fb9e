// vmstor-img's commands by name: usage, dispatch, and the error messages and exit codes of each.
#include "dispatch.hpp"

#include "cli.hpp"
#include "common/error.hpp"

#include <cstdio>
#include <cstring>
#include <string_view>

namespace {

constexpr const char* usage =
    "usage: vmstor-img COMMAND [options]\n"
    "commands:\n"
    "  create [-f fmt] [-o options] [-b backing -F backing_fmt] FILE [SIZE]\n"
    "  info [-f fmt] [--output=json|human] [--backing-chain] FILE\n"
    "  map [-f fmt] [--output=json|human] FILE\n"
    "  check [-f fmt] [--output=json|human] [-r leaks|all] FILE\n"
    "  measure [--output=json|human] [-O fmt] [-o options] (--size N | FILE)\n"
    "  resize [--shrink] [--preallocation=MODE] [-f fmt] FILE [+-]SIZE\n"
    "  convert [-f fmt] [-O fmt] [-o options] [-c] [-p] [-m N] [-l snapshot] SRC DST\n"
    "  compare [-f fmt] [-F fmt] [-s] A B\n"
    "  snapshot [-l | -c NAME | -a NAME | -d NAME] [-f fmt] FILE\n"
    "  commit [-f fmt] [-d] [-p] FILE\n"
    "  rebase [-f fmt] [-u] [-p] -b BACKING [-F fmt] FILE\n";

} // namespace

namespace vmstor::img {

int run_command(int argc, char** argv) {
    if (argc < 2) {
        std::fputs(usage, stderr);
        return 1;
    }
    const std::string_view command = argv[1];
    if (command == "-h" || command == "--help") {
        std::fputs(usage, stdout);
        return 0;
    }
    struct Command {
        std::string_view name;
        int (*run)(int, char**);
        int error_exit;
    };
    static const Command commands[] = {
        {"info", cmd_info, 1},     {"map", cmd_map, 1},         {"measure", cmd_measure, 1},
        {"check", cmd_check, 1},   {"create", cmd_create, 1},   {"convert", cmd_convert, 1},
        {"resize", cmd_resize, 1}, {"compare", cmd_compare, 2}, {"snapshot", cmd_snapshot, 1},
        {"commit", cmd_commit, 1}, {"rebase", cmd_rebase, 1}};
    for (const auto& c : commands) {
        if (c.name != command)
            continue;
        try {
            return c.run(argc - 1, argv + 1);
        } catch (const vmstor::Error& e) {
            std::fflush(stdout);
            print_error(e.what());
            return c.error_exit;
        } catch (const std::exception& e) {
            std::fflush(stdout);
            print_error(e.what());
            return c.error_exit;
        }
    }
    print_error(std::string("Command not found: ") + argv[1]);
    return 1;
}

} // namespace vmstor::img
