#include "settings_store.hpp"

#include "common/error.hpp"
#include "common/files.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace vmstor::storage {

SettingsStore::SettingsStore(std::string directory) : directory_(std::move(directory)) {}

std::map<std::string, Thresholds> SettingsStore::load_thresholds() const {
    std::map<std::string, Thresholds> out;
    if (directory_.empty())
        return out;
    std::ifstream in(file());
    if (!in)
        return out;
    try {
        nlohmann::json settings = nlohmann::json::parse(in);
        for (const auto& [pool, levels] : settings.at("thresholds").items())
            out[pool] = Thresholds{levels.at("warning").get<double>(), levels.at("critical").get<double>()};
    } catch (const nlohmann::json::exception& e) {
        spdlog::warn("ignoring the damaged settings file '{}': {}", file(), e.what());
        out.clear();
    }
    return out;
}

void SettingsStore::save_thresholds(const std::map<std::string, Thresholds>& thresholds) const {
    if (directory_.empty())
        return;
    nlohmann::json settings;
    settings["thresholds"] = nlohmann::json::object();
    for (const auto& [pool, levels] : thresholds)
        settings["thresholds"][pool] = {{"warning", levels.warning}, {"critical", levels.critical}};
    replace_file(file(), settings.dump(2) + "\n", 0644, "the settings");
}

std::map<std::string, std::string> SettingsStore::load_formats() const {
    std::map<std::string, std::string> out;
    if (directory_.empty())
        return out;
    std::ifstream in(formats_file());
    if (!in)
        return out;
    try {
        nlohmann::json record = nlohmann::json::parse(in); // named: the loop must not outlive it
        for (const auto& [path, format] : record.at("formats").items())
            out[path] = format.get<std::string>();
    } catch (const nlohmann::json::exception& e) {
        spdlog::warn("ignoring the damaged formats file '{}': {}", formats_file(), e.what());
        out.clear();
    }
    return out;
}

void SettingsStore::save_formats(const std::map<std::string, std::string>& formats) const {
    if (directory_.empty())
        return;
    nlohmann::json record;
    record["formats"] = formats;
    replace_file(formats_file(), record.dump(1) + "\n", 0644, "the formats on record");
}

} // namespace vmstor::storage
