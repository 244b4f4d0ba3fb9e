#include "volume_commands.hpp"

#include <memory>

#include "bus.hpp"
#include "common/error.hpp"
#include "common/size.hpp"
#include "dbus_json.hpp"
#include "job_follower.hpp"
#include "requests.hpp"

namespace vmstor::client {

namespace {

void add_vol_list(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-list", "List a pool's volumes");
    auto pool = std::make_shared<std::string>();
    command->add_option("POOL", *pool, "Pool name")->required();
    command->callback([&context, pool] {
        ManagerProxy manager(context.bus());
        auto objects = manager.GetManagedObjects();
        auto pool_path = pool_object_path(*pool);
        auto pool_object = objects.find(sdbus::ObjectPath(pool_path));
        if (pool_object == objects.end() || !pool_object->second.contains(pool_interface))
            throw Error(ErrorCode::NotFound, "pool '" + *pool + "' does not exist");
        auto volumes = nlohmann::json::array();
        for (auto& volume : objects_with_interface(objects, volume_interface))
            if (volume.value("Pool", "") == pool_path)
                volumes.push_back(std::move(volume));
        context.print(volumes, [&] { return render_table(volume_table(volumes)); });
    });
}

void add_vol_info(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-info", "Show a volume's properties");
    auto name = add_volume_name(*command);
    command->callback([&context, name] {
        show_properties(context, volume_object_path(name->pool, name->volume), volume_interface,
                        volume_missing(*name), volume_property_order());
    });
}

void add_vol_create(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-create", "Create a volume in a pool");
    struct Arguments {
        std::string pool;
        std::string name;
        std::string size;
        std::string cluster_size;
        VolumeCreateRequest request;
    };
    auto args = std::make_shared<Arguments>();
    command->add_option("POOL", args->pool, "Pool name")->required();
    command->add_option("NAME", args->name, "New volume's name")->required();
    command->add_option("SIZE", args->size, "Virtual size, e.g. 10G")->required()->check(size_validator());
    command->add_option("--format", args->request.format, "Image format (the daemon's default: qcow2)")
        ->check(CLI::IsMember({"raw", "qcow2"}));
    command->add_option("--preallocation", args->request.preallocation, "How much to allocate up front")
        ->check(CLI::IsMember({"off", "metadata", "falloc", "full"}));
    command->add_option("--cluster-size", args->cluster_size, "qcow2 cluster size, e.g. 64K")
        ->check(size_validator());
    command->add_option("--backing", args->request.backing,
                        "Backing image: POOL/VOLUME, or an absolute file path");
    command->add_option("--backing-format", args->request.backing_format, "The backing image's format");
    command->callback([&context, args] {
        if (!args->cluster_size.empty())
            args->request.cluster_size = parse_size(args->cluster_size);
        auto options = volume_create_options(args->request);
        std::string created;
        translating_unknown_object("pool '" + args->pool + "' does not exist", [&] {
            PoolProxy pool(context.bus(), pool_object_path(args->pool));
            created = pool.CreateVolume(args->name, parse_size(args->size), options);
        });
        // A long creation (e.g. with preallocation) answers with a job: wait for it, then name the volume.
        if (is_job_path(created)) {
            follow_job(context.bus(), created);
            created = volume_object_path(args->pool, args->name);
        }
        context.print_created(created);
    });
}

void add_vol_delete(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-delete", "Delete a volume and its storage");
    auto name = add_volume_name(*command);
    command->callback([&context, name] {
        translating_unknown_object(volume_missing(*name), [&] {
            VolumeProxy(context.bus(), volume_object_path(name->pool, name->volume)).Delete({});
        });
    });
}

void add_vol_resize(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-resize", "Change a volume's virtual size");
    auto name = add_volume_name(*command);
    auto size = std::make_shared<std::string>();
    auto shrink = std::make_shared<bool>(false);
    command->add_option("SIZE", *size, "New virtual size, e.g. 20G")->required()->check(size_validator());
    command->add_flag("--shrink", *shrink, "Allow making the volume smaller");
    command->callback([&context, name, size, shrink] {
        translating_unknown_object(volume_missing(*name), [&] {
            VolumeProxy(context.bus(), volume_object_path(name->pool, name->volume))
                .Resize(parse_size(*size), volume_resize_options(*shrink));
        });
    });
}

} // namespace

void add_volume_commands(CLI::App& app, CommandContext& context) {
    add_vol_list(app, context);
    add_vol_info(app, context);
    add_vol_create(app, context);
    add_vol_delete(app, context);
    add_vol_resize(app, context);
}

} // namespace vmstor::client
