// vmstor-img commit and rebase: qemu-img's options, messages and exit codes.
#include "cli.hpp"
#include "common/error.hpp"

#include <cstdio>
#include <getopt.h>

namespace vmstor::img {

namespace {

qcow2::ProgressCallback progress_printer(bool enabled) {
    if (!enabled)
        return {};
    return [](double percent) {
        std::printf("    (%.2f/100%%)\r", percent);
        std::fflush(stdout);
    };
}

} // namespace

int cmd_commit(int argc, char** argv) {
    std::optional<std::string> format;
    bool keep = false, progress = false, quiet = false;
    static const option long_options[] = {{"force-share", no_argument, nullptr, force_share_option},
                                          {nullptr, 0, nullptr, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:dpqU", long_options, nullptr)) != -1;) {
        if (c == 'f')
            format = optarg;
        else if (c == 'd')
            keep = true;
        else if (c == 'p')
            progress = true;
        else if (c == 'q')
            quiet = true;
        else if (c == 'U')
            unrecognized_option("-U");
        else if (c == force_share_option)
            unrecognized_option("--force-share");
        else
            throw Error(ErrorCode::InvalidArgument, "usage: vmstor-img commit [-f fmt] [-d] [-p] FILE");
    }
    if (argc - optind != 1)
        throw Error(ErrorCode::InvalidArgument, "Expecting one image file name");
    auto image = open_image(argv[optind], format, true, !keep);
    qcow2::CommitOptions options;
    options.empty_overlay = !keep;
    options.progress = progress_printer(progress && !quiet);
    qcow2::commit_image(*image, options);
    if (progress && !quiet)
        std::printf("    (100.00/100%%)\n");
    if (!quiet)
        std::printf("Image committed.\n");
    return 0;
}

int cmd_rebase(int argc, char** argv) {
    std::optional<std::string> format, backing_format, backing;
    bool unsafe = false, progress = false, quiet = false, force_share = false;
    static const option long_options[] = {{"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:F:b:upqU", long_options, nullptr)) != -1;) {
        if (c == 'f')
            format = optarg;
        else if (c == 'F')
            backing_format = optarg;
        else if (c == 'b')
            backing = optarg;
        else if (c == 'u')
            unsafe = true;
        else if (c == 'p')
            progress = true;
        else if (c == 'q')
            quiet = true;
        else if (c == 'U')
            force_share = true; // qemu-img rebase -U: for the new backing file only
        else
            throw Error(ErrorCode::InvalidArgument,
                        "usage: vmstor-img rebase [-f fmt] [-u] [-p] -b BACKING [-F FMT] FILE");
    }
    if (argc - optind != 1)
        throw Error(ErrorCode::InvalidArgument, "Expecting one image file name");
    if (!backing)
        throw Error(ErrorCode::InvalidArgument, "Must specify backing file (-b)");
    if (backing->empty() && backing_format)
        throw Error(ErrorCode::InvalidArgument, "Cannot use -F without a backing file (-b '')");
    auto image = open_image(argv[optind], format, !unsafe, true);
    qcow2::RebaseOptions options;
    options.backing_file = *backing;
    options.backing_format = backing_format;
    options.unsafe = unsafe;
    options.force_share_backing = force_share;
    options.progress = progress_printer(progress && !quiet);
    qcow2::rebase_image(*image, options);
    if (progress && !quiet)
        std::printf("    (100.00/100%%)\n");
    return 0;
}

} // namespace vmstor::img
