#include "backing_chain.hpp"

#include "common/error.hpp"
#include "qcow2/image.hpp"

#include <algorithm>
#include <spdlog/spdlog.h>

namespace vmstor::storage {

namespace {
// How deep a chain is followed; real chains have a handful of layers, a hostile one may loop or go on.
constexpr std::size_t max_chain_depth = 64;
} // namespace

std::vector<std::pair<std::string, std::string>> read_backing_chain(const std::string& path,
                                                                    const std::string& format) {
    std::vector<std::pair<std::string, std::string>> chain{{path, format}};
    while (chain.size() < max_chain_depth && chain.back().second == "qcow2") {
        const auto& [layer_path, layer_format] = chain.back();
        qcow2::ImageInfo info;
        try {
            qcow2::OpenOptions options;
            options.format = qcow2::ImageFormat::Qcow2;
            options.open_backing = false;
            info = qcow2::Image::open(layer_path, options)->info();
        } catch (const vmstor::Error& e) {
            spdlog::debug("backing chain stops at '{}': {}", layer_path, e.what());
            break;
        }
        if (!info.full_backing_filename)
            break;
        std::string next_format = info.backing_format.value_or("");
        auto seen = [&](const auto& layer) {
            return layer.first == *info.full_backing_filename;
        };
        if (std::any_of(chain.begin(), chain.end(), seen)) {
            spdlog::warn("the backing chain of '{}' loops back to '{}'", path, *info.full_backing_filename);
            break;
        }
        chain.emplace_back(*info.full_backing_filename, next_format);
    }
    return chain;
}

} // namespace vmstor::storage
