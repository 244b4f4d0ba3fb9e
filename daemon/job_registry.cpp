#include "job_registry.hpp"

#include "error_boundary.hpp"
#include "object_paths.hpp"

#include <chrono>

namespace vmstor::daemon {

namespace {

constexpr const char* job_interface = "org.vmstor.Storage1.Job";
constexpr std::chrono::seconds finished_job_lifetime{60};

std::uint64_t now_usec() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

} // namespace

JobObject::JobObject(sdbus::IConnection& bus, const std::string& path, JobRecord record)
    : AdaptorInterfaces(bus, path), record_(std::move(record)) {
    registerAdaptor();
    emitInterfacesAddedSignal();
}

JobObject::~JobObject() {
    emitInterfacesRemovedSignal();
    unregisterAdaptor();
}

void JobObject::finish(bool success, const std::string& error_name, const std::string& message) {
    record_.state = success ? "completed" : "failed";
    record_.end_time = now_usec();
    emitPropertiesChangedSignal(job_interface, {"State", "Progress", "ExpectedEndTime"});
    emitCompleted(success, error_name, message);
}

void JobObject::Cancel(const std::map<std::string, sdbus::Variant>&) {
    guarded([&] {
        throw vmstor::Error(ErrorCode::NotSupported,
                            fmt::format("job {} ({}) cannot be cancelled: it is {}",
                                        getObject().getObjectPath(), record_.operation,
                                        record_.state == "running" ? "not cancelable" : "finished"));
    });
}

JobRegistry::JobRegistry(sdbus::IConnection& bus, storage::Scheduler& scheduler)
    : bus_(bus), scheduler_(scheduler) {}

sdbus::ObjectPath JobRegistry::run(std::string operation, std::vector<sdbus::ObjectPath> objects,
                                   std::uint32_t uid, bool wait, const std::function<void()>& work) {
    std::uint64_t id = next_id_++;
    std::string path = job_path(id);
    JobRecord record{std::move(operation), std::move(objects), uid, now_usec(), 0, "running"};
    auto& job = jobs_[id] = std::make_unique<JobObject>(bus_, path, std::move(record));
    scheduler_.after(finished_job_lifetime, [this, id] { jobs_.erase(id); });
    try {
        guarded(work);
    } catch (const sdbus::Error& e) {
        job->finish(false, e.getName(), e.getMessage());
        if (wait)
            throw;
        return sdbus::ObjectPath(path);
    }
    job->finish(true, "", "");
    return sdbus::ObjectPath(path);
}

std::vector<sdbus::ObjectPath> JobRegistry::paths() const {
    std::vector<sdbus::ObjectPath> out;
    for (const auto& [id, job] : jobs_)
        out.emplace_back(job_path(id));
    return out;
}

} // namespace vmstor::daemon
