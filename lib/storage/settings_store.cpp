#include "settings_store.hpp"

#include "common/error.hpp"

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
    replace_file(file(), settings.dump(2) + "\n");
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
    replace_file(formats_file(), record.dump(1) + "\n");
}

void SettingsStore::replace_file(const std::string& path, const std::string& text) {
    std::string temporary = path + ".new";
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw system_error(errno, fmt::format("cannot save '{}'", temporary));
    bool written =
        ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    int saved_errno = errno;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), path.c_str()) < 0) {
        int errnum = written ? errno : saved_errno;
        ::unlink(temporary.c_str());
        throw system_error(errnum, fmt::format("cannot save '{}'", path));
    }
}

} // namespace vmstor::storage
