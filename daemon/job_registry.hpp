// Job objects (org.vmstor.Storage1.Job) and the registry that owns them. For now a job runs its work
// synchronously on the main loop; a finished job stays 60 s so that late clients can read its outcome.
#pragma once

#include "storage/model.hpp"
#include "vmstor-job-adaptor.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <vector>

namespace vmstor::daemon {

struct JobRecord {
    std::string operation;
    std::vector<sdbus::ObjectPath> objects;
    std::uint32_t started_by_uid = 0;
    std::uint64_t start_time = 0; ///< microseconds since the epoch
    std::uint64_t end_time = 0;
    std::string state = "running"; ///< running, completed, failed, cancelled
};

class JobObject final
    : public sdbus::AdaptorInterfaces<org::vmstor::Storage1::Job_adaptor, sdbus::ManagedObject_adaptor,
                                      sdbus::Properties_adaptor> {
  public:
    JobObject(sdbus::IConnection& bus, const std::string& path, JobRecord record);
    ~JobObject();

    /// @brief Marks the job ended, emits PropertiesChanged and Completed.
    void finish(bool success, const std::string& error_name, const std::string& message);
    const JobRecord& record() const { return record_; }

  private:
    void Cancel(const std::map<std::string, sdbus::Variant>& options) override;
    std::string Operation() override { return record_.operation; }
    std::vector<sdbus::ObjectPath> Objects() override { return record_.objects; }
    double Progress() override { return record_.state == "running" ? 0.0 : 1.0; }
    bool ProgressValid() override { return true; }
    uint64_t Bytes() override { return 0; }
    uint64_t BytesDone() override { return 0; }
    uint64_t Rate() override { return 0; }
    uint64_t StartTime() override { return record_.start_time; }
    uint64_t ExpectedEndTime() override { return record_.end_time; }
    uint32_t StartedByUID() override { return record_.started_by_uid; }
    bool Cancelable() override { return false; }
    std::string State() override { return record_.state; }

    JobRecord record_;
};

class JobRegistry {
  public:
    JobRegistry(sdbus::IConnection& bus, storage::Scheduler& scheduler);

    /// @brief Creates a job, runs `work` now, and records its outcome. With `wait`, a failure is thrown
    /// to the caller as well; without, the caller reads it from the job.
    sdbus::ObjectPath run(std::string operation, std::vector<sdbus::ObjectPath> objects, std::uint32_t uid,
                          bool wait, const std::function<void()>& work);
    std::vector<sdbus::ObjectPath> paths() const;

  private:
    sdbus::IConnection& bus_;
    storage::Scheduler& scheduler_;
    std::uint64_t next_id_ = 1;
    std::map<std::uint64_t, std::unique_ptr<JobObject>> jobs_;
};

} // namespace vmstor::daemon
