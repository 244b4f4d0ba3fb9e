// create, resize, convert and compare.
#include "cli.hpp"
#include "common/error.hpp"

#include <cstdio>
#include <fmt/format.h>
#include <getopt.h>
#include <optional>
#include <string>

namespace vmstor::img {

namespace {

// The line qemu-img create prints: its options in its order, the optional ones only when given.
void print_formatting(const std::string& path, const qcow2::CreateOptions& o, const std::string& size_text,
                      const std::vector<std::pair<std::string, std::string>>& given) {
    auto given_value = [&](const char* key) -> std::optional<std::string> {
        std::optional<std::string> value;
        for (const auto& [k, v] : given)
            if (k == key)
                value = v;
        return value;
    };
    const auto preallocation = given_value("preallocation");
    std::string line = fmt::format("Formatting '{}', fmt={}", path, qcow2::format_name(o.format));
    if (o.format == qcow2::ImageFormat::Qcow2) {
        line += fmt::format(" cluster_size={} extended_l2={}", o.cluster_size, o.extended_l2 ? "on" : "off");
        if (preallocation)
            line += " preallocation=" + *preallocation;
        line += fmt::format(" compression_type={} size={}",
                            o.compression_type == qcow2::CompressionType::Zstd ? "zstd" : "zlib", size_text);
        if (o.backing_file)
            line += fmt::format(" backing_file={} backing_fmt={}", *o.backing_file,
                                o.backing_format.value_or(""));
        if (given_value("compat"))
            line += fmt::format(" compat={}", o.version == 2 ? "0.10" : "1.1");
        line += fmt::format(" lazy_refcounts={} refcount_bits={}", o.lazy_refcounts ? "on" : "off",
                            o.refcount_bits);
    } else {
        if (preallocation)
            line += " preallocation=" + *preallocation;
        line += " size=" + size_text;
    }
    std::printf("%s\n", line.c_str());
}

/// @brief resize --preallocation: qemu-img's modes and its message for any other.
qcow2::Preallocation resize_preallocation(const std::string& mode) {
    if (mode == "off")
        return qcow2::Preallocation::Off;
    if (mode == "metadata")
        return qcow2::Preallocation::Metadata;
    if (mode == "falloc")
        return qcow2::Preallocation::Falloc;
    if (mode == "full")
        return qcow2::Preallocation::Full;
    throw Error(ErrorCode::InvalidArgument, "Invalid preallocation mode '" + mode + "'");
}

/// @brief convert -l: "NAME", "snapshot.name=NAME" or "snapshot.id=ID" (QEMU's forms), as a name or id.
std::string snapshot_argument(const std::string& text) {
    for (const char* prefix : {"snapshot.name=", "snapshot.id="})
        if (text.starts_with(prefix))
            return text.substr(std::string_view(prefix).size());
    if (text.find('=') != std::string::npos)
        throw Error(ErrorCode::InvalidArgument,
                    "convert -l takes a snapshot name, snapshot.name=NAME or snapshot.id=ID, not '" + text +
                        "'");
    return text;
}

} // namespace

int cmd_create(int argc, char** argv) {
    std::string format = "raw";
    std::vector<std::pair<std::string, std::string>> given;
    std::optional<std::string> backing, backing_format;
    bool quiet = false;
    static const option long_options[] = {{"force-share", no_argument, nullptr, force_share_option},
                                          {nullptr, 0, nullptr, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "F:b:f:ho:quU", long_options, nullptr)) != -1;) {
        switch (c) {
        case 'U':
            unrecognized_option("-U");
        case force_share_option:
            unrecognized_option("--force-share");
        case 'f':
            format = optarg;
            break;
        case 'o':
            for (auto& kv : parse_option_list(optarg))
                given.push_back(kv);
            break;
        case 'b':
            backing = optarg;
            break;
        case 'F':
            backing_format = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'u':
            break;
        default:
            throw Error(ErrorCode::InvalidArgument,
                        "usage: vmstor-img create [-f fmt] [-o options] [-b backing -F fmt] FILE [SIZE]");
        }
    }
    if (optind >= argc || argc - optind > 2)
        throw Error(ErrorCode::InvalidArgument, "Expecting image file name");
    const std::string path = argv[optind];
    qcow2::CreateOptions o;
    o.format = qcow2::parse_format(format);
    for (const auto& [key, value] : given)
        qcow2::set_create_option(o, key, value);
    if (backing)
        o.backing_file = backing;
    if (backing_format)
        o.backing_format = backing_format;
    std::string size_text;
    if (optind + 1 < argc) {
        o.size = parse_size_argument(argv[optind + 1]);
        size_text = std::to_string(o.size);
    } else if (o.backing_file) {
        if (!o.backing_format)
            throw Error(ErrorCode::InvalidArgument, "Backing file specified without backing format");
        // As qemu-img create: the backing file is opened for its size only, sharing everything.
        auto base = open_image(qcow2::resolve_backing_path(path, *o.backing_file), o.backing_format, false,
                               false, std::nullopt, {.force_share = true, .metadata_only = true});
        o.size = base->virtual_size();
        size_text = std::to_string(o.size);
    } else {
        bool has_size = false;
        for (const auto& [k, v] : given)
            has_size |= k == "size";
        if (!has_size)
            throw Error(ErrorCode::InvalidArgument, "Image creation needs a size parameter");
        size_text = std::to_string(o.size);
    }
    if (!quiet)
        print_formatting(path, o, size_text, given);
    std::fflush(stdout);
    const ExistingFileLock lock(path, path + ": ");
    qcow2::create_image(path, o);
    return 0;
}

int cmd_resize(int argc, char** argv) {
    if (argc < 3)
        throw Error(ErrorCode::InvalidArgument,
                    "usage: vmstor-img resize [--shrink] [--preallocation=MODE] [-f fmt] FILE [+-]SIZE");
    // The size goes first: "-1G" must not reach getopt as an option.
    const std::string size_text = argv[argc - 1];
    --argc;
    std::optional<std::string> format;
    bool shrink = false, quiet = false;
    qcow2::Preallocation preallocation = qcow2::Preallocation::Off;
    static const option long_options[] = {{"shrink", no_argument, nullptr, 's'},
                                          {"format", required_argument, nullptr, 'f'},
                                          {"preallocation", required_argument, nullptr, 'p'},
                                          {"force-share", no_argument, nullptr, force_share_option},
                                          {nullptr, 0, nullptr, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:hqU", long_options, nullptr)) != -1;) {
        if (c == 'f')
            format = optarg;
        else if (c == 'p')
            preallocation = resize_preallocation(optarg);
        else if (c == 's')
            shrink = true;
        else if (c == 'q')
            quiet = true;
        else if (c == 'U')
            unrecognized_option("-U");
        else if (c == force_share_option)
            unrecognized_option("--force-share");
        else
            throw Error(ErrorCode::InvalidArgument,
                        "usage: vmstor-img resize [--shrink] [--preallocation=MODE] [-f fmt] FILE [+-]SIZE");
    }
    if (optind != argc - 1)
        throw Error(ErrorCode::InvalidArgument, "Expecting one image file name");
    const qcow2::LockOptions locking{.resize = true};
    auto image = open_image(argv[optind], format, false, true, std::nullopt, locking);
    const auto backing_chain = lock_backing_chain(*image, locking); // qemu-img resize opens it
    std::uint64_t new_size;
    if (size_text.starts_with("+")) {
        new_size = image->virtual_size() + parse_size_argument(size_text.substr(1));
    } else if (size_text.starts_with("-")) {
        const std::uint64_t delta = parse_size_argument(size_text.substr(1));
        if (delta > image->virtual_size())
            throw Error(ErrorCode::InvalidArgument, "New image size must be positive");
        new_size = image->virtual_size() - delta;
    } else {
        new_size = parse_size_argument(size_text);
    }
    if (new_size == 0)
        throw Error(ErrorCode::InvalidArgument, "New image size must be positive");
    if (preallocation != qcow2::Preallocation::Off && shrink && new_size < image->virtual_size())
        throw Error(ErrorCode::InvalidArgument, "Preallocation can only be used for growing images");
    if (preallocation == qcow2::Preallocation::Off)
        image->resize(new_size, shrink);
    else
        qcow2::grow_image(*image, new_size, preallocation);
    image->flush();
    if (!quiet)
        std::printf("Image resized.\n");
    return 0;
}

int cmd_convert(int argc, char** argv) {
    std::optional<std::string> format;
    std::string target_format = "raw";
    std::vector<std::pair<std::string, std::string>> given;
    qcow2::ConvertOptions options;
    options.sync = false;
    bool progress = false;
    std::optional<std::string> snapshot;
    qcow2::LockOptions source_locking{.unshare_write = true};
    static const option long_options[] = {{"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:O:o:cpm:WqUnS:t:T:l:", long_options, nullptr)) != -1;) {
        switch (c) {
        case 'U':
            source_locking.force_share = true; // the source only: the target is always locked
            break;
        case 'l':
            snapshot = snapshot_argument(optarg);
            break;
        case 'f':
            format = optarg;
            break;
        case 'O':
            target_format = optarg;
            break;
        case 'o':
            for (auto& kv : parse_option_list(optarg))
                given.push_back(kv);
            break;
        case 'c':
            options.compress = true;
            break;
        case 'p':
            progress = true;
            break;
        case 'm': {
            const int n = std::atoi(optarg);
            if (n < 1 || n > 16)
                throw Error(ErrorCode::InvalidArgument,
                            "Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
            options.threads = static_cast<unsigned>(n);
            break;
        }
        case 'n':
            throw Error(ErrorCode::NotSupported, "convert -n (an existing target) is not supported");
        case 't':
            // qemu-img convert writes its target with cache=unsafe unless told otherwise.
            options.sync = std::string(optarg) != "unsafe";
            break;
        case 'W':
        case 'q':
        case 'S':
        case 'T':
            break;
        default:
            throw Error(ErrorCode::InvalidArgument,
                        "usage: vmstor-img convert [-f fmt] [-O fmt] [-o options] [-c] [-p] [-m N] "
                        "[-l snapshot] SRC DST");
        }
    }
    if (argc - optind != 2)
        throw Error(ErrorCode::InvalidArgument, "Expecting one source and one target file name");
    options.target.format = qcow2::parse_format(target_format);
    for (const auto& [key, value] : given)
        qcow2::set_create_option(options.target, key, value);
    if (options.target.backing_file)
        throw Error(ErrorCode::NotSupported, "convert with a backing file for the target is not supported");
    auto source = open_image(argv[optind], format, true, false, snapshot, source_locking);
    if (progress) {
        options.progress = [last = -1.0](double percent) mutable {
            if (percent - last >= 1.0 || percent >= 100.0) {
                std::printf("    (%.2f/100%%)\r", percent);
                std::fflush(stdout);
                last = percent;
            }
        };
    }
    const std::string target = argv[optind + 1];
    const ExistingFileLock lock(target,
                                fmt::format("{}: error while converting {}: ", target, target_format));
    options.target_locking = qcow2::LockOptions{};
    qcow2::convert_image(*source, target, options);
    if (progress)
        std::printf("    (100.00/100%%)\n");
    return 0;
}

int cmd_compare(int argc, char** argv) {
    std::optional<std::string> format_a, format_b;
    bool strict = false, quiet = false, progress = false;
    qcow2::LockOptions locking;
    static const option long_options[] = {{"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "f:F:spqU", long_options, nullptr)) != -1;) {
        if (c == 'f')
            format_a = optarg;
        else if (c == 'F')
            format_b = optarg;
        else if (c == 's')
            strict = true;
        else if (c == 'q')
            quiet = true;
        else if (c == 'p')
            progress = true;
        else if (c == 'U')
            locking.force_share = true;
        else
            throw Error(ErrorCode::InvalidArgument, "usage: vmstor-img compare [-f fmt] [-F fmt] [-s] A B");
    }
    if (argc - optind != 2)
        throw Error(ErrorCode::InvalidArgument, "Expecting two image file names");
    if (!format_b)
        format_b = format_a;
    auto a = open_image(argv[optind], format_a, true, false, std::nullopt, locking);
    auto b = open_image(argv[optind + 1], format_b, true, false, std::nullopt, locking);
    if (strict && a->virtual_size() != b->virtual_size()) {
        if (!quiet)
            std::printf("Strict mode: Image size mismatch!\n");
        return 1;
    }
    (void)progress;
    qcow2::CompareResult r = qcow2::compare_images(*a, *b, {}, strict);
    const std::uint64_t common = std::min(a->virtual_size(), b->virtual_size());
    // qemu-img warns once the common part compared equal, before it looks at the longer image's tail.
    if (!quiet && a->virtual_size() != b->virtual_size() && (r.identical || r.mismatch_offset >= common))
        std::printf("Warning: Image size mismatch!\n");
    if (!quiet) {
        if (r.status_mismatch)
            std::printf("Strict mode: Offset %llu block status mismatch!\n",
                        static_cast<unsigned long long>(r.mismatch_offset));
        else if (r.identical)
            std::printf("Images are identical.\n");
        else
            std::printf("Content mismatch at offset %llu!\n",
                        static_cast<unsigned long long>(r.mismatch_offset));
    }
    return r.identical ? 0 : 1;
}

} // namespace vmstor::img
