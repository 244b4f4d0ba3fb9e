// info, map and measure: read-only views of an image, in qemu-img's output formats.
#include "cli.hpp"
#include "common/error.hpp"
#include "imagejson/info_json.hpp"
#include "imagejson/qemu_json.hpp"
#include "qcow2/chain_status.hpp"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <getopt.h>
#include <set>

namespace vmstor::img {

namespace {

void print_info_human(const qcow2::ImageInfo& info) {
    std::printf("image: %s\n", info.filename.c_str());
    std::printf("file format: %s\n", std::string(qcow2::format_name(info.format)).c_str());
    std::printf("virtual size: %s (%llu bytes)\n", human_size(info.virtual_size).c_str(),
                static_cast<unsigned long long>(info.virtual_size));
    std::printf("disk size: %s\n", human_size(info.actual_size).c_str());
    if (info.cluster_size)
        std::printf("cluster_size: %llu\n", static_cast<unsigned long long>(*info.cluster_size));
    if (info.backing_filename) {
        std::printf("backing file: %s", info.backing_filename->c_str());
        if (info.full_backing_filename && *info.full_backing_filename != *info.backing_filename)
            std::printf(" (actual path: %s)", info.full_backing_filename->c_str());
        std::printf("\n");
        if (info.backing_format)
            std::printf("backing file format: %s\n", info.backing_format->c_str());
    }
    if (info.dirty)
        std::printf("cleanly shut down: no\n");
    if (!info.snapshots.empty())
        print_snapshot_table(info.snapshots);
    if (info.format == qcow2::ImageFormat::Qcow2) {
        std::printf("Format specific information:\n");
        std::printf("    compat: %s\n", info.compat.c_str());
        std::printf("    compression type: %s\n", info.compression_type.c_str());
        if (info.compat != "0.10")
            std::printf("    lazy refcounts: %s\n", info.lazy_refcounts ? "true" : "false");
        if (!info.bitmaps.empty()) {
            std::printf("    bitmaps:\n");
            for (std::size_t i = 0; i < info.bitmaps.size(); ++i) {
                const auto& b = info.bitmaps[i];
                std::printf("        [%zu]:\n            flags:\n", i);
                int flag = 0;
                if (b.in_use)
                    std::printf("                [%d]: in-use\n", flag++);
                if (b.auto_)
                    std::printf("                [%d]: auto\n", flag++);
                std::printf("            name: %s\n            granularity: %llu\n", b.name.c_str(),
                            static_cast<unsigned long long>(b.granularity));
            }
        }
        std::printf("    refcount bits: %u\n", info.refcount_bits);
        if (info.compat != "0.10") {
            std::printf("    corrupt: %s\n", info.corrupt ? "true" : "false");
            std::printf("    extended l2: %s\n", info.extended_l2 ? "true" : "false");
        }
        if (info.data_file) {
            std::printf("    data file: %s\n", info.data_file->c_str());
            std::printf("    data file raw: %s\n", info.data_file_raw ? "true" : "false");
        }
    }
}

} // namespace

int cmd_info(int argc, char** argv) {
    std::optional<std::string> format;
    OutputFormat output = OutputFormat::Human;
    bool chain = false;
    static const option long_options[] = {{"output", required_argument, nullptr, 'O'},
                                          {"backing-chain", no_argument, nullptr, 'b'},
                                          {"format", required_argument, nullptr, 'f'},
                                          {"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    // qemu-img info reads no guest data and opens no backing file: it locks each image as a metadata
    // reader only.
    qcow2::LockOptions locking{.metadata_only = true};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:hU", long_options, nullptr)) != -1;) {
        if (c == 'f')
            format = optarg;
        else if (c == 'O')
            output = parse_output(optarg);
        else if (c == 'b')
            chain = true;
        else if (c == 'U')
            locking.force_share = true;
        else
            throw Error(ErrorCode::InvalidArgument, "usage: vmstor-img info [-f fmt] [--output=json|human] "
                                                    "[--backing-chain] FILE");
    }
    if (optind != argc - 1)
        throw Error(ErrorCode::InvalidArgument, "Expecting one image file name");
    std::string path = argv[optind];
    std::vector<qcow2::ImageInfo> infos; // printed once the whole chain opened, as qemu-img does
    std::set<std::string> seen;
    while (true) {
        std::error_code ignored;
        std::string canonical = std::filesystem::weakly_canonical(path, ignored).string();
        if (!seen.insert(canonical.empty() ? path : canonical).second ||
            seen.size() > qcow2::OpenOptions{}.max_backing_depth)
            throw Error(ErrorCode::Corrupt, fmt::format("Backing file '{}' creates an infinite loop.", path));
        // info never opens a backing file itself: each element of the chain is opened on its own.
        auto image = open_image(path, format, false, false, std::nullopt, locking);
        const qcow2::ImageInfo& info = infos.emplace_back(image->info());
        if (!chain || !info.full_backing_filename)
            break;
        if (!info.backing_format)
            throw Error(
                ErrorCode::NotSupported,
                fmt::format("'{}': the backing file '{}' has no recorded format; refusing to probe it",
                            info.filename, *info.backing_filename));
        path = *info.full_backing_filename;
        format = info.backing_format;
    }
    Json list = Json::array();
    for (std::size_t i = 0; i < infos.size(); ++i) {
        if (output == OutputFormat::Json) {
            list.push_back(info_json(infos[i]));
        } else {
            if (i > 0)
                std::printf("\n");
            print_info_human(infos[i]);
        }
    }
    if (output == OutputFormat::Json)
        std::printf("%s\n", qemu_json(chain ? list : list.at(0)).c_str());
    return 0;
}

int cmd_map(int argc, char** argv) {
    std::optional<std::string> format;
    OutputFormat output = OutputFormat::Human;
    static const option long_options[] = {{"output", required_argument, nullptr, 'O'},
                                          {"format", required_argument, nullptr, 'f'},
                                          {"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    qcow2::LockOptions locking;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:hU", long_options, nullptr)) != -1;) {
        if (c == 'f')
            format = optarg;
        else if (c == 'O')
            output = parse_output(optarg);
        else if (c == 'U')
            locking.force_share = true;
        else
            throw Error(ErrorCode::InvalidArgument,
                        "usage: vmstor-img map [-f fmt] [--output=json|human] FILE");
    }
    if (optind != argc - 1)
        throw Error(ErrorCode::InvalidArgument, "Expecting one image file name");
    auto image = open_image(argv[optind], format, true, false, std::nullopt, locking);
    // qemu-img prints the last extent with the closing bracket, so each extent is printed one late.
    std::optional<qcow2::MapExtent> pending;
    bool printed_any = false;
    auto print = [&](const qcow2::MapExtent& e, bool last) {
        const qcow2::ChainStatus& s = e.status;
        if (output == OutputFormat::Json) {
            std::printf(
                "%s{ \"start\": %llu, \"length\": %llu, \"depth\": %d, \"present\": %s, \"zero\": %s, "
                "\"data\": %s",
                printed_any ? "" : "[", static_cast<unsigned long long>(e.start),
                static_cast<unsigned long long>(s.length), s.depth, s.present ? "true" : "false",
                s.zero ? "true" : "false", s.data ? "true" : "false");
            if (s.offset)
                std::printf(", \"offset\": %llu", static_cast<unsigned long long>(*s.offset));
            std::printf("}%s", last ? "]\n" : ",\n");
        } else {
            if (!printed_any)
                std::printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
            if (s.data && !s.offset)
                throw Error(ErrorCode::NotSupported,
                            "File contains external, encrypted or compressed clusters.");
            if (s.data && !s.zero)
                std::printf("%#-16llx%#-16llx%#-16llx%s\n", static_cast<unsigned long long>(e.start),
                            static_cast<unsigned long long>(s.length),
                            static_cast<unsigned long long>(s.offset.value_or(0)),
                            s.file ? s.file->path().c_str() : "");
        }
        printed_any = true;
    };
    qcow2::for_each_map_extent(*image, [&](const qcow2::MapExtent& extent) {
        if (pending)
            print(*pending, false);
        pending = extent;
    });
    // A 0-byte image has one empty extent, as qemu-img prints it.
    print(pending.value_or(qcow2::MapExtent{}), true);
    return 0;
}

int cmd_measure(int argc, char** argv) {
    std::optional<std::string> format;
    std::optional<std::string> target_format;
    std::optional<std::uint64_t> size;
    OutputFormat output = OutputFormat::Human;
    std::vector<std::string> options;
    static const option long_options[] = {{"output", required_argument, nullptr, 'J'},
                                          {"size", required_argument, nullptr, 's'},
                                          {"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    qcow2::LockOptions locking;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:O:o:hU", long_options, nullptr)) != -1;) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'O':
            target_format = optarg;
            break;
        case 'o':
            options.emplace_back(optarg);
            break;
        case 'J':
            output = parse_output(optarg);
            break;
        case 's':
            size = parse_size_argument(optarg);
            break;
        case 'U':
            locking.force_share = true;
            break;
        default:
            throw Error(
                ErrorCode::InvalidArgument,
                "usage: vmstor-img measure [--output=json|human] [-O fmt] [-o options] (--size N | FILE)");
        }
    }
    const bool has_file = optind < argc;
    if (has_file == size.has_value())
        throw Error(ErrorCode::InvalidArgument, "Either --size N or one filename must be specified.");
    qcow2::CreateOptions target;
    target.format = qcow2::parse_format(target_format.value_or("raw"));
    for (const auto& list : options)
        for (const auto& [key, value] : parse_option_list(list))
            qcow2::set_create_option(target, key, value);
    std::unique_ptr<qcow2::Image> source;
    if (has_file)
        source = open_image(argv[optind], format, true, false, std::nullopt, locking);
    qcow2::MeasureResult r = qcow2::measure_image(target, source.get(), size.value_or(0));
    if (output == OutputFormat::Json) {
        Json j;
        j["required"] = r.required;
        j["fully-allocated"] = r.fully_allocated;
        if (r.bitmaps)
            j["bitmaps"] = *r.bitmaps;
        std::printf("%s\n", qemu_json(j).c_str());
    } else {
        std::printf("required size: %llu\n", static_cast<unsigned long long>(r.required));
        std::printf("fully allocated size: %llu\n", static_cast<unsigned long long>(r.fully_allocated));
        if (r.bitmaps)
            std::printf("bitmaps size: %llu\n", static_cast<unsigned long long>(*r.bitmaps));
    }
    return 0;
}

} // namespace vmstor::img
