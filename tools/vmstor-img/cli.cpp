#include "cli.hpp"

#include "common/error.hpp"
#include "common/size.hpp"

#include <cmath>
#include <cstdio>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmstor::img {

OutputFormat parse_output(const std::string& text) {
    if (text == "json")
        return OutputFormat::Json;
    if (text == "human")
        return OutputFormat::Human;
    throw Error(ErrorCode::InvalidArgument, "--output must be used with human or json as argument.");
}

std::string human_size(std::uint64_t bytes) {
    static const char* const suffixes[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    int exponent = 0;
    std::frexp(static_cast<double>(bytes) / (1000.0 / 1024.0), &exponent);
    int i = (exponent - 1) / 10;
    if (i < 0)
        i = 0;
    const double value = static_cast<double>(bytes) / static_cast<double>(1ull << (i * 10));
    char out[64];
    std::snprintf(out, sizeof out, "%0.3g %sB", value, suffixes[i]);
    return out;
}

std::vector<std::pair<std::string, std::string>> parse_option_list(const std::string& text) {
    std::vector<std::pair<std::string, std::string>> options;
    std::string item;
    auto flush = [&] {
        if (item.empty())
            return;
        auto eq = item.find('=');
        if (eq == std::string::npos) {
            if (item == "help" || item == "?")
                throw Error(ErrorCode::InvalidArgument, "option help is not available; see the README");
            throw Error(ErrorCode::InvalidArgument, fmt::format("Invalid option list: {}", text));
        }
        options.emplace_back(item.substr(0, eq), item.substr(eq + 1));
        item.clear();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == ',') {
            if (i + 1 < text.size() && text[i + 1] == ',') {
                item.push_back(',');
                ++i;
                continue;
            }
            flush();
        } else {
            item.push_back(text[i]);
        }
    }
    flush();
    return options;
}

std::unique_ptr<qcow2::Image> open_image(const std::string& path, const std::optional<std::string>& format,
                                         bool open_backing, bool writable,
                                         const std::optional<std::string>& snapshot,
                                         const qcow2::LockOptions& locking) {
    if (writable && locking.force_share)
        throw Error(
            ErrorCode::InvalidArgument,
            fmt::format("Could not open '{}': force-share=on can only be used with read-only images", path));
    qcow2::OpenOptions options;
    options.locking = locking;
    options.snapshot = snapshot;
    if (format)
        options.format = qcow2::parse_format(*format);
    options.open_backing = open_backing;
    options.writable = writable;
    // Probing a backing file's format is how a hostile image reads files it should not: never probe.
    options.require_backing_format = true;
    options.for_repair = writable && !open_backing;
    try {
        return qcow2::Image::open(path, options);
    } catch (const qcow2::ImageLockConflict& e) {
        throw qcow2::ImageLockConflict(fmt::format("Could not open '{}': {}", path, e.what()));
    }
}

void unrecognized_option(const std::string& option) {
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("unrecognized option '{}'\nTry 'vmstor-img --help' for more information", option));
}

std::unique_ptr<qcow2::Image> lock_backing_chain(qcow2::Image& image, const qcow2::LockOptions& locking) {
    qcow2::OpenOptions options;
    options.locking = locking;
    try {
        const qcow2::ImageInfo info = image.info();
        if (!info.full_backing_filename || !info.backing_format)
            return nullptr;
        options.format = qcow2::parse_format(*info.backing_format);
        return qcow2::Image::open(*info.full_backing_filename, options);
    } catch (const qcow2::ImageLockConflict& e) {
        throw qcow2::ImageLockConflict(
            fmt::format("Could not open '{}': Could not open backing file: {}", image.path(), e.what()));
    } catch (const Error&) {
        return nullptr;
    }
}

ExistingFileLock::ExistingFileLock(const std::string& path, const std::string& prefix) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd_ < 0)
        return; // nothing there yet (or nothing the command can use: it says so itself)
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || S_ISDIR(st.st_mode)) {
        ::close(fd_);
        fd_ = -1;
        return;
    }
    try {
        lock_ = std::make_unique<qcow2::ImageLock>(fd_, path, qcow2::create_lock_perms);
    } catch (const qcow2::ImageLockConflict& e) {
        ::close(fd_);
        throw qcow2::ImageLockConflict(prefix + e.what());
    }
}

ExistingFileLock::~ExistingFileLock() {
    lock_.reset();
    if (fd_ >= 0)
        ::close(fd_);
}

std::uint64_t parse_size_argument(const std::string& text) {
    try {
        return parse_size(text);
    } catch (const Error&) {
        throw Error(ErrorCode::InvalidArgument,
                    "Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
    }
}

void print_error(const std::string& message) {
    std::fprintf(stderr, "vmstor-img: %s\n", message.c_str());
}

} // namespace vmstor::img
