#include "snapshot_commands.hpp"

#include <memory>

#include "bus.hpp"
#include "common/error.hpp"
#include "common/size.hpp"
#include "dbus_json.hpp"
#include "job_commands.hpp"
#include "requests.hpp"
#include "volume_data_commands.hpp"

namespace vmstor::client {

namespace {

struct SnapshotName {
    std::shared_ptr<VolumeName> volume;
    std::string snapshot;

    std::string path() const { return snapshot_object_path(volume->pool, volume->volume, snapshot); }
    std::string missing() const {
        return "snapshot '" + snapshot + "' does not exist on volume '" + volume->volume + "' of pool '" +
               volume->pool + "'";
    }
};

std::shared_ptr<SnapshotName> add_snapshot_name(CLI::App& command) {
    auto name = std::make_shared<SnapshotName>();
    name->volume = add_volume_name(command);
    command.add_option("NAME", name->snapshot, "Snapshot name")->required();
    return name;
}

void add_snapshot_create(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("snapshot-create", "Take an internal snapshot of a qcow2 volume");
    auto name = add_snapshot_name(*command);
    command->callback([&context, name] {
        std::string created;
        translating_unknown_object(volume_missing(*name->volume), [&] {
            created = VolumeProxy(context.bus(), volume_object_path(name->volume->pool, name->volume->volume))
                          .CreateSnapshot(name->snapshot, {});
        });
        context.print_created(created);
    });
}

void add_snapshot_list(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("snapshot-list", "List a volume's internal snapshots");
    auto name = add_volume_name(*command);
    command->callback([&context, name] {
        auto objects = ManagerProxy(context.bus()).GetManagedObjects();
        auto volume_path = volume_object_path(name->pool, name->volume);
        auto volume = objects.find(sdbus::ObjectPath(volume_path));
        if (volume == objects.end() || !volume->second.contains(volume_interface))
            throw Error(ErrorCode::NotFound, volume_missing(*name));
        auto snapshots = nlohmann::json::array();
        for (auto& snapshot : objects_with_interface(objects, snapshot_interface))
            if (snapshot.value("Volume", "") == volume_path)
                snapshots.push_back(std::move(snapshot));
        context.print(snapshots, [&] { return render_table(snapshot_table(snapshots)); });
    });
}

void add_snapshot_revert(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("snapshot-revert", "Bring a volume back to an internal snapshot");
    auto name = add_snapshot_name(*command);
    command->callback([&context, name] {
        translating_unknown_object(name->missing(),
                                   [&] { SnapshotProxy(context.bus(), name->path()).Revert({}); });
    });
}

void add_snapshot_delete(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("snapshot-delete", "Delete an internal snapshot");
    auto name = add_snapshot_name(*command);
    command->callback([&context, name] {
        translating_unknown_object(name->missing(),
                                   [&] { SnapshotProxy(context.bus(), name->path()).Delete({}); });
    });
}

void add_snapshot_clone(CLI::App& app, CommandContext& context) {
    auto* command =
        app.add_subcommand("snapshot-clone", "Copy an internal snapshot's data into a new volume");
    struct Arguments {
        std::string target_pool;
        std::string new_name;
        CopyArguments copy;
        JobFlags flags;
    };
    auto name = add_snapshot_name(*command);
    auto args = std::make_shared<Arguments>();
    command->add_option("TARGET_POOL", args->target_pool, "Pool to create the new volume in")->required();
    command->add_option("NEWNAME", args->new_name, "The new volume's name")->required();
    add_copy_options(*command, args->copy);
    add_job_flags(*command, args->flags);
    command->callback([&context, name, args] {
        auto options = args->flags.with_rate_limit(parsed_copy_options(args->copy));
        std::string job;
        translating_unknown_object(name->missing(), [&] {
            job =
                SnapshotProxy(context.bus(), name->path())
                    .CloneTo(sdbus::ObjectPath(pool_object_path(args->target_pool)), args->new_name, options);
        });
        if (finish_job(context, job, args->flags.no_wait))
            context.print_created(volume_object_path(args->target_pool, args->new_name));
    });
}

void add_vol_overlay(CLI::App& app, CommandContext& context) {
    auto* command =
        app.add_subcommand("vol-overlay", "Create a qcow2 volume backed by this one (an external snapshot)");
    struct Arguments {
        std::string new_name;
        std::string cluster_size;
        bool lazy_refcounts = false;
    };
    auto name = add_volume_name(*command);
    auto args = std::make_shared<Arguments>();
    command->add_option("NEWNAME", args->new_name, "The overlay's name")->required();
    command->add_option("--cluster-size", args->cluster_size, "The overlay's cluster size, e.g. 64K")
        ->check(size_validator());
    command->add_flag("--lazy-refcounts", args->lazy_refcounts, "Turn on lazy refcounts in the overlay");
    command->callback([&context, name, args] {
        PropertyMap options;
        if (!args->cluster_size.empty())
            options["cluster_size"] = parse_size(args->cluster_size);
        if (args->lazy_refcounts)
            options["lazy_refcounts"] = true;
        std::string created;
        translating_unknown_object(volume_missing(*name), [&] {
            created = VolumeProxy(context.bus(), volume_object_path(name->pool, name->volume))
                          .CreateOverlay(args->new_name, options);
        });
        context.print_created(created);
    });
}

void add_vol_commit(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-commit", "Merge an overlay's data into its backing image");
    auto name = add_volume_name(*command);
    auto flags = std::make_shared<JobFlags>();
    add_job_flags(*command, *flags);
    command->callback([&context, name, flags] {
        run_volume_job(context, *name, flags->no_wait,
                       [&](VolumeProxy& volume) { return volume.Commit(flags->with_rate_limit({})); });
    });
}

void add_vol_rebase(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-rebase", "Give a qcow2 volume another backing image");
    struct Arguments {
        std::string backing;
        std::string backing_format;
        bool unsafe = false;
        JobFlags flags;
    };
    auto name = add_volume_name(*command);
    auto args = std::make_shared<Arguments>();
    command->add_option("BACKING", args->backing, "The new backing image's path ('' for none)")->required();
    command->add_option("--backing-format", args->backing_format, "The new backing image's format")
        ->check(CLI::IsMember({"raw", "qcow2"}));
    command->add_flag("--unsafe", args->unsafe, "Only rewrite the header; do not compare the data");
    add_job_flags(*command, args->flags);
    command->callback([&context, name, args] {
        auto options = args->flags.with_rate_limit(rebase_options(args->backing_format, args->unsafe));
        run_volume_job(context, *name, args->flags.no_wait,
                       [&](VolumeProxy& volume) { return volume.Rebase(args->backing, options); });
    });
}

void add_snapshot_schedule(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand(
        "snapshot-schedule",
        "Show or set a volume's snapshot schedule (scheduled snapshots and their retention)");
    struct Arguments {
        std::string calendar;
        std::vector<std::string> keep;
        std::uint64_t max_age = 0;
        bool remove = false;
    };
    auto name = add_volume_name(*command);
    auto args = std::make_shared<Arguments>();
    command->add_option("--calendar", args->calendar,
                        "When to take a snapshot: a systemd calendar expression");
    command
        ->add_option("--keep", args->keep,
                     "PERIOD=COUNT, PERIOD one of hourly, daily, weekly, monthly, yearly")
        ->delimiter(',');
    command->add_option("--max-age", args->max_age, "Prune scheduled snapshots older than this many seconds");
    command->add_flag("--remove", args->remove, "Remove the schedule (its snapshots stay)");
    command->callback([&context, name, args] {
        VolumeProxy volume(context.bus(), volume_object_path(name->pool, name->volume));
        if (args->calendar.empty() && !args->remove) {
            nlohmann::json schedule;
            translating_unknown_object(volume_missing(*name),
                                       [&] { schedule = properties_to_json(volume.Schedule()); });
            context.print(schedule, [&] {
                return schedule.empty() ? std::string("no schedule\n") : schedule.dump(2) + "\n";
            });
            return;
        }
        PropertyMap schedule;
        if (!args->remove) {
            schedule["snapshot.calendar"] = args->calendar;
            std::map<std::string, std::uint32_t> keep;
            for (const std::string& item : args->keep) {
                auto equals = item.find('=');
                if (equals == std::string::npos)
                    throw Error(ErrorCode::InvalidArgument,
                                "--keep " + item + ": expected PERIOD=COUNT, e.g. daily=7");
                keep[item.substr(0, equals)] =
                    static_cast<std::uint32_t>(std::stoul(item.substr(equals + 1)));
            }
            if (!keep.empty())
                schedule["snapshot.keep"] = keep;
            if (args->max_age > 0)
                schedule["snapshot.max_age"] = args->max_age;
        }
        translating_unknown_object(volume_missing(*name), [&] { volume.SetSchedule(schedule, {}); });
    });
}

} // namespace

void add_snapshot_commands(CLI::App& app, CommandContext& context) {
    add_snapshot_create(app, context);
    add_snapshot_list(app, context);
    add_snapshot_revert(app, context);
    add_snapshot_delete(app, context);
    add_snapshot_clone(app, context);
    add_vol_overlay(app, context);
    add_vol_commit(app, context);
    add_vol_rebase(app, context);
    add_snapshot_schedule(app, context);
}

} // namespace vmstor::client
