#include "pool_commands.hpp"

#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include "bus.hpp"
#include "common/error.hpp"
#include "dbus_json.hpp"
#include "requests.hpp"

namespace vmstor::client {

namespace {

std::string pool_missing(const std::string& pool) {
    return "pool '" + pool + "' does not exist";
}

std::string read_text(const std::string& file) {
    if (file == "-")
        return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    std::ifstream in(file);
    if (!in)
        throw Error(ErrorCode::NotFound, "cannot read '" + file + "'");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void add_pool_list(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("pool-list", "List the pools");
    command->callback([&context] {
        ManagerProxy manager(context.bus());
        auto pools = objects_with_interface(manager.GetManagedObjects(), pool_interface);
        context.print(pools, [&] { return render_table(pool_table(pools)); });
    });
}

void add_pool_info(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("pool-info", "Show a pool's properties");
    auto pool = std::make_shared<std::string>();
    command->add_option("POOL", *pool, "Pool name")->required();
    command->callback([&context, pool] {
        show_properties(context, pool_object_path(*pool), pool_interface, pool_missing(*pool),
                        pool_property_order());
    });
}

void add_pool_create(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("pool-create", "Define a pool, then build, start and autostart it");
    struct Arguments {
        std::string name;
        std::string type;
        PoolCreateRequest request;
        bool no_build = false;
        bool no_start = false;
        bool no_autostart = false;
    };
    auto args = std::make_shared<Arguments>();
    command->add_option("NAME", args->name, "Pool name")->required();
    command->add_option("TYPE", args->type, "libvirt pool type (dir, fs, netfs, logical, disk, ...)")
        ->required();
    command->add_option("--target", args->request.target_path, "Target path (directory or device directory)");
    command->add_option("--source-device", args->request.source_devices, "Source device (repeatable)")
        ->allow_extra_args(false); // one device per --source-device, so positionals after it stay positionals
    command->add_option("--source-host", args->request.source_host, "Source host");
    command->add_option("--source-dir", args->request.source_dir, "Source directory on the host");
    command->add_option("--source-name", args->request.source_name, "Source name (e.g. volume group)");
    command->add_option("--source-format", args->request.source_format, "Source format (e.g. ext4, gpt)");
    command->add_flag("--no-build", args->no_build, "Do not build the pool's storage");
    command->add_flag("--no-start", args->no_start, "Do not start the pool");
    command->add_flag("--no-autostart", args->no_autostart, "Do not mark the pool autostart");
    command->callback([&context, args] {
        args->request.build = !args->no_build;
        args->request.start = !args->no_start;
        args->request.autostart = !args->no_autostart;
        ManagerProxy manager(context.bus());
        auto path = manager.CreatePool(args->name, args->type, pool_definition(args->request),
                                       pool_create_options(args->request));
        context.print_created(path);
    });
}

void add_pool_define_xml(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("pool-define-xml", "Define a pool from libvirt pool XML");
    auto file = std::make_shared<std::string>();
    command->add_option("FILE", *file, "File with the pool XML, or - for standard input")->required();
    command->callback([&context, file] {
        auto xml = read_text(*file);
        ManagerProxy manager(context.bus());
        context.print_created(manager.DefinePoolXML(xml, {}));
    });
}

using PoolAction = void (PoolProxy::*)(const std::map<std::string, sdbus::Variant>&);

void add_pool_action(CLI::App& app, CommandContext& context, const std::string& name,
                     const std::string& description, PoolAction action) {
    auto* command = app.add_subcommand(name, description);
    auto pool = std::make_shared<std::string>();
    command->add_option("POOL", *pool, "Pool name")->required();
    command->callback([&context, pool, action] {
        translating_unknown_object(pool_missing(*pool), [&] {
            PoolProxy proxy(context.bus(), pool_object_path(*pool));
            (proxy.*action)({});
        });
    });
}

void add_pool_autostart(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("pool-autostart", "Turn a pool's autostart on or off");
    auto pool = std::make_shared<std::string>();
    auto setting = std::make_shared<std::string>();
    command->add_option("POOL", *pool, "Pool name")->required();
    command->add_option("SETTING", *setting, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
    command->callback([&context, pool, setting] {
        translating_unknown_object(pool_missing(*pool), [&] {
            PoolProxy(context.bus(), pool_object_path(*pool)).Autostart(*setting == "on");
        });
    });
}

void add_pool_capabilities(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("pool-capabilities", "Show what each pool type supports here");
    command->callback([&context] {
        ManagerProxy manager(context.bus());
        auto capabilities = properties_to_json(manager.GetPoolCapabilities({}));
        context.print(capabilities, [&] { return render_sections(capabilities); });
    });
}

} // namespace

void add_pool_commands(CLI::App& app, CommandContext& context) {
    add_pool_list(app, context);
    add_pool_info(app, context);
    add_pool_create(app, context);
    add_pool_define_xml(app, context);
    add_pool_action(app, context, "pool-start", "Start a pool", &PoolProxy::Start);
    add_pool_action(app, context, "pool-stop", "Stop a pool (its definition and storage stay)",
                    &PoolProxy::Stop);
    add_pool_action(app, context, "pool-refresh", "Rescan a pool's volumes", &PoolProxy::Refresh);
    add_pool_autostart(app, context);
    add_pool_action(app, context, "pool-undefine", "Remove a pool's definition (its storage stays)",
                    &PoolProxy::Undefine);
    add_pool_action(app, context, "pool-delete", "Remove a pool's storage itself", &PoolProxy::Delete);
    add_pool_capabilities(app, context);
}

} // namespace vmstor::client
