#include "cli.hpp"

#include "common/error.hpp"
#include "common/size.hpp"

#include <cmath>
#include <cstdio>
#include <fmt/format.h>

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
                                         const std::optional<std::string>& snapshot) {
    qcow2::OpenOptions options;
    options.snapshot = snapshot;
    if (format)
        options.format = qcow2::parse_format(*format);
    options.open_backing = open_backing;
    options.writable = writable;
    // Probing a backing file's format is how a hostile image reads files it should not: never probe.
    options.require_backing_format = true;
    options.for_repair = writable && !open_backing;
    return qcow2::Image::open(path, options);
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
