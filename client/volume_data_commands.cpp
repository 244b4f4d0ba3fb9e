#include "volume_data_commands.hpp"

#include <fcntl.h>
#include <iostream>
#include <map>
#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <unistd.h>

#include "bus.hpp"
#include "common/error.hpp"
#include "common/size.hpp"
#include "dbus_json.hpp"
#include "image_reports.hpp"
#include "job_commands.hpp"

namespace vmstor::client {

namespace {

/// The most extents one Volume.Map answers (its D-Bus contract).
constexpr std::size_t map_page_extents = 65536;

/// @brief The value of the variant the reply is at: the types a Map extent uses.
nlohmann::json read_map_value(sdbus::Message& reply) {
    std::string type;
    std::string contents;
    reply.peekType(type, contents);
    reply.enterVariant(contents);
    nlohmann::json value;
    if (contents == "t") {
        std::uint64_t number = 0;
        reply >> number;
        value = number;
    } else if (contents == "i") {
        std::int32_t number = 0;
        reply >> number;
        value = number;
    } else if (contents == "b") {
        bool flag = false;
        reply >> flag;
        value = flag;
    } else {
        throw vmstor::Error(ErrorCode::Failed, "vmstord answered a map value of type '" + contents + "'");
    }
    reply.exitVariant();
    return value;
}

/// @brief Appends one page of Volume.Map from `offset` to `extents`; returns how many it had. The reply is
/// read field by field: an sdbus::Variant per field (each its own message) would cost the client far
/// more than the answer itself.
std::size_t read_map_page(sdbus::IProxy& volume, std::uint64_t offset, nlohmann::json& extents) {
    auto call = volume.createMethodCall(volume_interface, "Map");
    call << std::map<std::string, sdbus::Variant>{{"offset", sdbus::Variant(offset)}};
    auto reply = volume.callMethod(call);
    std::size_t count = 0;
    reply.enterContainer("a{sv}");
    while (reply.enterContainer("{sv}")) {
        nlohmann::json extent = nlohmann::json::object();
        while (reply.enterDictEntry("sv")) {
            std::string key;
            reply >> key;
            extent[key] = read_map_value(reply);
            reply.exitDictEntry();
        }
        reply.clearFlags();
        reply.exitContainer();
        extents.push_back(std::move(extent));
        ++count;
    }
    reply.clearFlags();
    reply.exitContainer();
    return count;
}

std::optional<std::uint64_t> optional_size(const std::string& text) {
    if (text.empty())
        return std::nullopt;
    return parse_size(text);
}

/// @brief FILE opened for the daemon to read from ('-' is stdin).
sdbus::UnixFd open_for_reading(const std::string& file) {
    if (file == "-")
        return sdbus::UnixFd(STDIN_FILENO);
    int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw system_error(errno, "cannot open '" + file + "' for reading");
    return sdbus::UnixFd(fd, sdbus::adopt_fd);
}

/// @brief FILE created (or truncated) for the daemon to write to ('-' is stdout).
sdbus::UnixFd open_for_writing(const std::string& file) {
    if (file == "-")
        return sdbus::UnixFd(STDOUT_FILENO);
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw system_error(errno, "cannot open '" + file + "' for writing");
    return sdbus::UnixFd(fd, sdbus::adopt_fd);
}

/// @brief The --offset, --length and --sparse options, as typed.
struct TransferArguments {
    std::string offset;
    std::string length;
    bool sparse = false;

    TransferRequest request() const { return {optional_size(offset), optional_size(length), sparse}; }
};

void add_transfer_options(CLI::App& command, TransferArguments& args, bool with_offset) {
    if (with_offset)
        command.add_option("--offset", args.offset, "Where in the volume to start, e.g. 1G")
            ->check(size_validator());
    command.add_option("--length", args.length, "How many bytes to move (default: to the end)")
        ->check(size_validator());
    command.add_flag("--sparse", args.sparse, "Skip zeroes: leave holes instead of writing them");
}

void add_vol_clone(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-clone", "Copy a volume into a new one (same pool by default)");
    struct Arguments {
        std::string new_name;
        std::string to_pool;
        CopyArguments copy;
        JobFlags flags;
    };
    auto args = std::make_shared<Arguments>();
    auto name = add_volume_name(*command);
    command->add_option("NEWNAME", args->new_name, "The copy's name")->required();
    command->add_option("--to-pool", args->to_pool, "Pool to create the copy in");
    add_copy_options(*command, args->copy);
    add_job_flags(*command, args->flags);
    command->callback([&context, name, args] {
        auto target_pool = args->to_pool.empty() ? name->pool : args->to_pool;
        auto options = args->flags.with_rate_limit(parsed_copy_options(args->copy));
        std::string job;
        translating_unknown_object("pool '" + target_pool + "' does not exist", [&] {
            job = PoolProxy(context.bus(), pool_object_path(target_pool))
                      .CloneVolume(sdbus::ObjectPath(volume_object_path(name->pool, name->volume)),
                                   args->new_name, options);
        });
        if (finish_job(context, job, args->flags.no_wait))
            context.print_created(volume_object_path(target_pool, args->new_name));
    });
}

void add_vol_convert(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-convert", "Convert a volume into a new one in another format");
    struct Arguments {
        std::string target_pool;
        std::string new_name;
        CopyArguments copy;
        JobFlags flags;
    };
    auto args = std::make_shared<Arguments>();
    auto name = add_volume_name(*command);
    command->add_option("TARGET_POOL", args->target_pool, "Pool to create the new volume in")->required();
    command->add_option("NEWNAME", args->new_name, "The new volume's name")->required();
    add_copy_options(*command, args->copy);
    add_job_flags(*command, args->flags);
    command->callback([&context, name, args] {
        auto options = args->flags.with_rate_limit(parsed_copy_options(args->copy));
        auto target_pool = sdbus::ObjectPath(pool_object_path(args->target_pool));
        if (run_volume_job(context, *name, args->flags.no_wait, [&](VolumeProxy& volume) {
                return volume.Convert(target_pool, args->new_name, options);
            }))
            context.print_created(volume_object_path(args->target_pool, args->new_name));
    });
}

void add_vol_wipe(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-wipe", "Overwrite a volume's data (with zeroes by default)");
    struct Arguments {
        std::string algorithm;
        JobFlags flags;
    };
    auto args = std::make_shared<Arguments>();
    auto name = add_volume_name(*command);
    command->add_option("--algorithm", args->algorithm,
                        "zero, or one of libvirt's (raw volumes): nnsa, dod, bsi, gutmann, schneier, "
                        "pfitzner7, pfitzner33, random");
    add_job_flags(*command, args->flags);
    command->callback([&context, name, args] {
        std::map<std::string, sdbus::Variant> options;
        if (!args->algorithm.empty())
            options["algorithm"] = sdbus::Variant(args->algorithm);
        run_volume_job(context, *name, args->flags.no_wait, [&](VolumeProxy& volume) {
            return volume.Wipe(args->flags.with_rate_limit(options));
        });
    });
}

void add_vol_upload(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-upload", "Write a file's bytes into a volume ('-': stdin)");
    auto name = add_volume_name(*command);
    auto file = std::make_shared<std::string>();
    auto transfer = std::make_shared<TransferArguments>();
    auto flags = std::make_shared<JobFlags>();
    command->add_option("FILE", *file, "File to read, '-' for stdin")->required();
    add_transfer_options(*command, *transfer, true);
    add_job_flags(*command, *flags);
    command->callback([&context, name, file, transfer, flags] {
        auto options = flags->with_rate_limit(transfer_options(transfer->request()));
        auto fd = open_for_reading(*file);
        run_volume_job(context, *name, flags->no_wait,
                       [&](VolumeProxy& volume) { return volume.Upload(fd, options); });
    });
}

void add_vol_download(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-download", "Write a volume's guest data to a file ('-': stdout)");
    auto name = add_volume_name(*command);
    auto file = std::make_shared<std::string>();
    auto transfer = std::make_shared<TransferArguments>();
    auto flags = std::make_shared<JobFlags>();
    command->add_option("FILE", *file, "File to write, '-' for stdout")->required();
    add_transfer_options(*command, *transfer, true);
    add_job_flags(*command, *flags);
    command->callback([&context, name, file, transfer, flags] {
        auto options = flags->with_rate_limit(transfer_options(transfer->request()));
        auto fd = open_for_writing(*file);
        run_volume_job(context, *name, flags->no_wait,
                       [&](VolumeProxy& volume) { return volume.Download(fd, options); });
    });
}

void add_vol_import(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-import", "Make a new volume from a file's bytes ('-': stdin)");
    struct Arguments {
        std::string pool;
        std::string name;
        std::string file;
        std::string format;
        std::string cluster_size;
        TransferArguments transfer;
        JobFlags flags;
    };
    auto args = std::make_shared<Arguments>();
    command->add_option("POOL", args->pool, "Pool name")->required();
    command->add_option("NAME", args->name, "New volume's name")->required();
    command->add_option("FILE", args->file, "File to read, '-' for stdin")->required();
    command->add_option("--format", args->format, "The new volume's format")
        ->check(CLI::IsMember({"raw", "qcow2"}));
    command->add_option("--cluster-size", args->cluster_size, "qcow2 cluster size, e.g. 64K")
        ->check(size_validator());
    add_transfer_options(*command, args->transfer, false);
    add_job_flags(*command, args->flags);
    command->callback([&context, args] {
        auto options = args->flags.with_rate_limit(
            import_options(args->format, optional_size(args->cluster_size), args->transfer.request()));
        auto fd = open_for_reading(args->file);
        std::string job;
        translating_unknown_object("pool '" + args->pool + "' does not exist", [&] {
            job =
                PoolProxy(context.bus(), pool_object_path(args->pool)).ImportVolume(args->name, fd, options);
        });
        if (finish_job(context, job, args->flags.no_wait))
            context.print_created(volume_object_path(args->pool, args->name));
    });
}

void add_vol_check(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand(
        "vol-check",
        "Check a qcow2 volume's metadata (exit 2: corruptions, 3: leaks only, as qemu-img check)");
    auto name = add_volume_name(*command);
    auto repair = std::make_shared<std::string>();
    command->add_option("--repair", *repair, "Repair leaks only, or everything")
        ->check(CLI::IsMember({"leaks", "all"}));
    command->callback([&context, name, repair] {
        nlohmann::json result;
        translating_unknown_object(volume_missing(*name), [&] {
            result =
                properties_to_json(VolumeProxy(context.bus(), volume_object_path(name->pool, name->volume))
                                       .Check(check_options(*repair)));
        });
        context.print(result, [&] { return check_report_text(result); });
        context.exit_code = check_exit_code(result);
    });
}

void add_vol_measure(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-measure", "Show the space a copy of a volume would need");
    auto name = add_volume_name(*command);
    struct Arguments {
        std::string format;
        std::string cluster_size;
    };
    auto args = std::make_shared<Arguments>();
    command->add_option("--format", args->format, "The copy's format")
        ->check(CLI::IsMember({"raw", "qcow2"}));
    command->add_option("--cluster-size", args->cluster_size, "The copy's cluster size")
        ->check(size_validator());
    command->callback([&context, name, args] {
        auto options = measure_options(args->format, optional_size(args->cluster_size));
        nlohmann::json result;
        translating_unknown_object(volume_missing(*name), [&] {
            result = properties_to_json(
                VolumeProxy(context.bus(), volume_object_path(name->pool, name->volume)).Measure(options));
        });
        context.print(result, [&] { return measure_report_text(result); });
    });
}

void add_vol_map(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-map", "Show which ranges of a volume hold data (qemu-img map)");
    auto name = add_volume_name(*command);
    command->callback([&context, name] {
        auto extents = nlohmann::json::array();
        translating_unknown_object(volume_missing(*name), [&] {
            auto volume =
                sdbus::createProxy(context.bus(), service_name, volume_object_path(name->pool, name->volume));
            // Page by page: a full page may have more after it, from the end of its last extent on.
            for (std::uint64_t offset = 0;;) {
                std::size_t count = read_map_page(*volume, offset, extents);
                if (count < map_page_extents)
                    break;
                std::uint64_t next = extents.back().at("start").get<std::uint64_t>() +
                                     extents.back().at("length").get<std::uint64_t>();
                if (next <= offset)
                    throw vmstor::Error(ErrorCode::Failed,
                                        "vmstord answered a map page that does not advance");
                offset = next;
            }
        });
        context.print(extents, [&] { return map_report_text(extents); });
    });
}

void add_vol_img_info(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("vol-img-info", "Show a volume's image details (qemu-img info JSON)");
    auto name = add_volume_name(*command);
    command->callback([name, &context] {
        std::string info;
        translating_unknown_object(volume_missing(*name), [&] {
            info = VolumeProxy(context.bus(), volume_object_path(name->pool, name->volume)).Info({});
        });
        // Pretty whether or not --json was given: the answer is JSON already.
        std::cout << nlohmann::json::parse(info).dump(2) << "\n";
    });
}

} // namespace

void add_copy_options(CLI::App& command, CopyArguments& args) {
    command.add_option("--format", args.request.format, "The new volume's format")
        ->check(CLI::IsMember({"raw", "qcow2"}));
    command.add_flag("--compress", args.request.compress, "Compress the new qcow2 volume's clusters");
    command.add_option("--compression-type", args.request.compression_type, "With --compress: the algorithm")
        ->check(CLI::IsMember({"zlib", "zstd"}));
    command.add_option("--cluster-size", args.cluster_size, "The new qcow2 volume's cluster size, e.g. 64K")
        ->check(size_validator());
    command.add_flag("--no-sync", args.request.no_sync,
                     "Finish without flushing the new volume to disk (faster; a power cut may lose it)");
}

PropertyMap parsed_copy_options(CopyArguments& args) {
    args.request.cluster_size = optional_size(args.cluster_size);
    return copy_options(args.request);
}

void add_volume_data_commands(CLI::App& app, CommandContext& context) {
    add_vol_clone(app, context);
    add_vol_convert(app, context);
    add_vol_wipe(app, context);
    add_vol_upload(app, context);
    add_vol_download(app, context);
    add_vol_import(app, context);
    add_vol_check(app, context);
    add_vol_measure(app, context);
    add_vol_map(app, context);
    add_vol_img_info(app, context);
}

} // namespace vmstor::client
