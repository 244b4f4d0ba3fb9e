#include "job_records.hpp"

#include "common/error.hpp"
#include "common/files.hpp"

#include <cerrno>
#include <chrono>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmstor::storage {

namespace {

constexpr const char* suffix = ".json";

std::string random_id() {
    unsigned char bytes[8];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes))
        throw system_error(errno, "cannot make a job record's name");
    std::string id;
    for (unsigned char b : bytes)
        id += fmt::format("{:02x}", b);
    return id;
}

void sync_directory(const std::string& directory) {
    int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) < 0) {
        int err = errno;
        if (fd >= 0)
            ::close(fd);
        throw system_error(err, fmt::format("cannot sync the directory '{}'", directory));
    }
    ::close(fd);
}

nlohmann::json to_json(const JobRecord& r) {
    return {{"kind", r.kind == JobRecord::Kind::Device ? "device" : "temporary"},
            {"uri", r.uri},
            {"pool", r.pool},
            {"volume", r.volume},
            {"operation", r.operation},
            {"started", r.started},
            {"path", r.path},
            {"key", r.key}};
}

JobRecord from_json(const nlohmann::json& j) {
    JobRecord r;
    std::string kind = j.at("kind").get<std::string>();
    if (kind != "device" && kind != "temporary")
        throw std::invalid_argument("unknown kind '" + kind + "'");
    r.kind = kind == "device" ? JobRecord::Kind::Device : JobRecord::Kind::Temporary;
    r.uri = j.at("uri").get<std::string>();
    r.pool = j.at("pool").get<std::string>();
    r.volume = j.at("volume").get<std::string>();
    r.operation = j.at("operation").get<std::string>();
    r.started = j.at("started").get<std::string>();
    r.path = j.at("path").get<std::string>();
    r.key = j.at("key").get<std::string>();
    return r;
}

} // namespace

std::string record_time_now() {
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                       fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
}

JobRecords::JobRecords(std::string state_directory)
    : directory_(state_directory.empty() ? "" : state_directory + "/jobs") {}

void JobRecords::write(const std::string& id, const JobRecord& record) const {
    std::error_code error;
    std::filesystem::create_directories(directory_, error);
    if (error)
        throw vmstor::Error(ErrorCode::Failed, fmt::format("cannot create the job record directory '{}': {}",
                                                           directory_, error.message()));
    std::string text = to_json(record).dump(2) + "\n";
    std::string file = directory_ + "/" + id + suffix;
    replace_file(file, text, 0600, "the job record");
    sync_directory(directory_);
}

std::string JobRecords::add(const JobRecord& record) const {
    if (!enabled())
        return "";
    std::string id = random_id();
    write(id, record);
    return id;
}

void JobRecords::update(const std::string& id, const JobRecord& record) const {
    if (enabled() && !id.empty())
        write(id, record);
}

void JobRecords::remove(const std::string& id) const noexcept {
    if (!enabled() || id.empty())
        return;
    std::string file = directory_ + "/" + id + suffix;
    if (::unlink(file.c_str()) < 0 && errno != ENOENT)
        spdlog::warn("cannot remove the job record '{}': {}", file, std::strerror(errno));
}

std::vector<std::pair<std::string, JobRecord>> JobRecords::load() const {
    std::vector<std::pair<std::string, JobRecord>> out;
    if (!enabled())
        return out;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(directory_, error)) {
        std::string name = entry.path().filename().string();
        if (!name.ends_with(suffix))
            continue; // a ".new" that a crash left: never renamed, so never a record
        std::string id = name.substr(0, name.size() - std::string_view(suffix).size());
        try {
            std::ifstream in(entry.path());
            out.emplace_back(id, from_json(nlohmann::json::parse(in)));
        } catch (const std::exception& e) {
            spdlog::warn("removing the damaged job record '{}': {}", entry.path().string(), e.what());
            remove(id);
        }
    }
    return out;
}

} // namespace vmstor::storage
