// check: qemu-img check's output, JSON fields and exit codes.
#include "cli.hpp"
#include "common/error.hpp"
#include "imagejson/qemu_json.hpp"

#include <cstdio>
#include <getopt.h>

namespace vmstor::img {

namespace {

void print_check_human(const qcow2::CheckResult& r) {
    if (!(r.corruptions || r.leaks || r.check_errors)) {
        std::printf("No errors were found on the image.\n");
    } else {
        if (r.corruptions)
            std::printf(
                "\n%llu errors were found on the image.\nData may be corrupted, or further writes to the "
                "image may corrupt it.\n",
                static_cast<unsigned long long>(r.corruptions));
        if (r.leaks)
            std::printf(
                "\n%llu leaked clusters were found on the image.\nThis means waste of disk space, but no "
                "harm to data.\n",
                static_cast<unsigned long long>(r.leaks));
        if (r.check_errors)
            std::printf("\n%llu internal errors have occurred during the check.\n",
                        static_cast<unsigned long long>(r.check_errors));
    }
    if (r.total_clusters != 0 && r.allocated_clusters != 0)
        std::printf(
            "%llu/%llu = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
            static_cast<unsigned long long>(r.allocated_clusters),
            static_cast<unsigned long long>(r.total_clusters),
            static_cast<double>(r.allocated_clusters) * 100.0 / static_cast<double>(r.total_clusters),
            static_cast<double>(r.fragmented_clusters) * 100.0 / static_cast<double>(r.allocated_clusters),
            static_cast<double>(r.compressed_clusters) * 100.0 / static_cast<double>(r.allocated_clusters));
    if (r.image_end_offset)
        std::printf("Image end offset: %llu\n", static_cast<unsigned long long>(r.image_end_offset));
}

Json check_json(const qcow2::CheckResult& r, const std::string& filename, const std::string& format) {
    Json j;
    j["filename"] = filename;
    j["format"] = format;
    j["check-errors"] = r.check_errors;
    auto optional = [&](const char* key, std::uint64_t value) {
        if (value)
            j[key] = value;
    };
    optional("image-end-offset", r.image_end_offset);
    optional("corruptions", r.corruptions);
    optional("leaks", r.leaks);
    optional("corruptions-fixed", r.corruptions_fixed);
    optional("leaks-fixed", r.leaks_fixed);
    optional("total-clusters", r.total_clusters);
    optional("allocated-clusters", r.allocated_clusters);
    optional("fragmented-clusters", r.fragmented_clusters);
    optional("compressed-clusters", r.compressed_clusters);
    return j;
}

} // namespace

int cmd_check(int argc, char** argv) {
    std::optional<std::string> format;
    OutputFormat output = OutputFormat::Human;
    qcow2::RepairMode repair = qcow2::RepairMode::None;
    bool quiet = false;
    static const option long_options[] = {{"output", required_argument, nullptr, 'J'},
                                          {"repair", required_argument, nullptr, 'r'},
                                          {"format", required_argument, nullptr, 'f'},
                                          {"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    qcow2::LockOptions locking;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:hr:qU", long_options, nullptr)) != -1;) {
        if (c == 'f') {
            format = optarg;
        } else if (c == 'J') {
            output = parse_output(optarg);
        } else if (c == 'r') {
            const std::string mode = optarg;
            if (mode == "leaks")
                repair = qcow2::RepairMode::Leaks;
            else if (mode == "all")
                repair = qcow2::RepairMode::All;
            else
                throw Error(ErrorCode::InvalidArgument,
                            "Unknown option value for -r (expecting 'leaks' or 'all'): " + mode);
        } else if (c == 'q') {
            quiet = true;
        } else if (c == 'U') {
            locking.force_share = true;
        } else {
            throw Error(ErrorCode::InvalidArgument,
                        "usage: vmstor-img check [-f fmt] [--output=json|human] [-r leaks|all] FILE");
        }
    }
    if (optind != argc - 1)
        throw Error(ErrorCode::InvalidArgument, "Expecting one image file name");
    const std::string path = argv[optind];
    qcow2::OpenOptions options;
    if (format)
        options.format = qcow2::parse_format(*format);
    options.open_backing = false;
    options.writable = repair != qcow2::RepairMode::None;
    options.for_repair = options.writable;
    options.for_check = true; // a damaged snapshot table is reported, not refused
    if (options.writable && locking.force_share)
        throw Error(ErrorCode::InvalidArgument,
                    "Could not open '" + path + "': force-share=on can only be used with read-only images");
    options.locking = locking;
    std::unique_ptr<qcow2::Image> image;
    try {
        image = qcow2::Image::open(path, options);
    } catch (const qcow2::ImageLockConflict& e) {
        throw qcow2::ImageLockConflict("Could not open '" + path + "': " + e.what());
    }
    const auto backing_chain = lock_backing_chain(*image, locking); // qemu-img check opens it
    qcow2::CheckResult r;
    try {
        r = image->check(repair);
    } catch (const Error& e) {
        if (e.code() == ErrorCode::NotSupported && image->format() == qcow2::ImageFormat::Raw) {
            print_error("This image format does not support checks");
            return 63;
        }
        throw;
    }
    for (const auto& line : r.messages)
        std::fprintf(stderr, "%s\n", line.c_str());
    if (!r.failure.empty()) {
        print_error("Check failed: " + r.failure);
        return 1;
    }
    if (output == OutputFormat::Json) {
        std::printf("%s\n",
                    qemu_json(check_json(r, path, std::string(qcow2::format_name(image->format())))).c_str());
    } else if (!quiet) {
        if (r.leaks_fixed || r.corruptions_fixed)
            std::printf(
                "The following inconsistencies were found and repaired:\n\n    %llu leaked clusters\n    "
                "%llu corruptions\n\nDouble checking the fixed image now...\n",
                static_cast<unsigned long long>(r.leaks_fixed),
                static_cast<unsigned long long>(r.corruptions_fixed));
        print_check_human(r);
    }
    if (r.check_errors)
        return 1;
    if (r.corruptions)
        return 2;
    if (r.leaks)
        return 3;
    return 0;
}

} // namespace vmstor::img
