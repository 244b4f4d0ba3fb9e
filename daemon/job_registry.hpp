// Job objects (org.vmstor.Storage1.Job, modelled on UDisks2's) and the registry that runs them: the work
// runs on the bounded worker pool, the object's properties follow it once a second, and a finished job
// stays 60 s so that late clients can read its outcome.
#pragma once

#include "authorized_call.hpp"
#include "options.hpp"
#include "storage/job_context.hpp"
#include "storage/model.hpp"
#include "storage/worker_pool.hpp"
#include "vmstor-job-adaptor.h"

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <set>
#include <string>
#include <vector>

namespace vmstor::daemon {

class Authorizer;

/// @brief The options every job method takes, read and checked before the method changes anything.
struct JobOptions {
    bool wait = false;
    std::uint64_t rate_limit = 0; ///< bytes of progress per second; 0: as fast as it can

    static JobOptions from(const Options& options);
    /// @brief A job method's own option keys plus `wait` and `rate_limit`.
    static std::vector<OptionSpec> keys_with(std::vector<OptionSpec> own);
};

struct JobSpec {
    std::string operation; ///< e.g. "volume-convert"
    std::vector<sdbus::ObjectPath> objects;
    std::uint32_t started_by_uid = 0;
    bool cancelable = true;
    /// Bytes of progress per second the work may make (0: as fast as it can); option `rate_limit`.
    std::uint64_t rate_limit = 0;
    /// Files the job writes: no other job or call may use them until this one ends (Busy), and the job
    /// holds QEMU's write lock on them while it runs.
    std::vector<std::string> files;
    /// Files the job reads that must not change meanwhile (a copy's source and its backing chain):
    /// other readers may share them, nothing may write, resize or delete them until the job ends, and
    /// the job holds QEMU's shared read lock on them (as qemu-img convert on its source).
    std::vector<std::string> read_files;
    /// False: the read files are claimed without QEMU's lock (a snapshot being cloned, whose clusters
    /// a VM running on the image does not change).
    bool lock_read_files = true;
    /// False: `files` are claimed without the registry's write lock, because the work takes QEMU's write
    /// lock itself (a scheduled snapshot, through the engine's snapshot functions).
    bool lock_files = true;
    /// Final paths of the new volumes the job makes (they get their names when the job completes): no
    /// other job or CreateVolume may take them meanwhile (Busy). Not locked: no such file exists yet.
    std::vector<std::string> new_files;
    /// The work reads or writes a caller's stream and may wait on it as long as the caller likes: it runs
    /// on a thread of its own, not on the bounded pool, so that a stalled caller stalls only this job.
    bool waits_on_caller = false;
    /// Runs on a worker thread; reports through the context; throws vmstor::Error to fail.
    std::function<void(storage::JobContext&)> work;
    /// Runs on the main loop once the work ended, before Completed is emitted (refresh pools, clean up).
    std::function<void(bool success)> finished;
};

class JobObject final
    : public sdbus::AdaptorInterfaces<org::vmstor::Storage1::Job_adaptor, sdbus::ManagedObject_adaptor,
                                      sdbus::Properties_adaptor> {
  public:
    JobObject(sdbus::IConnection& bus, std::string path, const JobSpec& spec, Authorizer& authorizer);
    ~JobObject();

    const std::shared_ptr<storage::JobContext>& context() const { return context_; }
    bool running() const { return state_ == "running"; }
    std::uint32_t started_by_uid() const { return started_by_uid_; }
    const std::string& operation() const { return operation_; }
    /// @brief Recomputes rate and expected end from the counters; emits what changed.
    void tick();
    void finish(const std::string& state, const std::string& error_name, const std::string& message);
    void reply_when_done(sdbus::Result<sdbus::ObjectPath>&& result);

  private:
    void Cancel(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    std::string Operation() override { return operation_; }
    std::vector<sdbus::ObjectPath> Objects() override { return objects_; }
    double Progress() override;
    bool ProgressValid() override { return context_->total() > 0 || !running(); }
    uint64_t Bytes() override { return context_->total(); }
    uint64_t BytesDone() override { return context_->done(); }
    uint64_t Rate() override { return rate_; }
    uint64_t StartTime() override { return start_time_; }
    uint64_t ExpectedEndTime() override { return expected_end_; }
    uint32_t StartedByUID() override { return started_by_uid_; }
    bool Cancelable() override { return cancelable_; }
    std::string State() override { return state_; }

    Authorizer& authorizer_;
    std::string path_;
    std::string operation_;
    std::vector<sdbus::ObjectPath> objects_;
    std::uint32_t started_by_uid_;
    bool cancelable_;
    std::shared_ptr<storage::JobContext> context_ = std::make_shared<storage::JobContext>();
    std::uint64_t start_time_;
    std::uint64_t expected_end_ = 0;
    std::uint64_t rate_ = 0;
    std::string state_ = "running";
    std::uint64_t last_done_ = 0;
    std::chrono::steady_clock::time_point last_tick_ = std::chrono::steady_clock::now();
    std::vector<sdbus::Result<sdbus::ObjectPath>> waiters_;
    std::string error_name_;
    std::string error_message_;
    Liveness alive_ = make_liveness();
};

/// Jobs running or queued that one caller may have at once (root, and vmstord itself, has the larger
/// bound): each may hold a file descriptor and a worker's time.
inline constexpr std::size_t max_jobs_per_caller = 16;
inline constexpr std::size_t max_jobs_for_root = 256;

class JobRegistry {
  public:
    JobRegistry(sdbus::IConnection& bus, storage::Scheduler& scheduler, storage::WorkerPool& workers,
                Authorizer& authorizer);
    /// @brief Asks every running job to stop.
    ~JobRegistry();

    /// @brief Creates the job object and queues its work (or starts it on its own thread, if it waits on its
    /// caller); returns the job's path at once. A job whose work stops after a Cancel ends `cancelled`,
    /// whatever the work threw. Throws Busy
    /// when another running job holds one of spec.files, LimitExceeded when the caller has as many jobs
    /// running or queued as it may.
    sdbus::ObjectPath start(JobSpec spec);
    /// @brief Replies to `result` with the job's path when it ends (or its error, if it failed).
    void reply_when_done(const sdbus::ObjectPath& job, sdbus::Result<sdbus::ObjectPath>&& result);
    /// @brief start() with the common job options, then reply now, or when the job ends if the caller
    /// asked to `wait`.
    void start_and_reply(JobSpec spec, const JobOptions& options, sdbus::Result<sdbus::ObjectPath>&& result);
    std::vector<sdbus::ObjectPath> paths() const;
    /// @brief Before `what` changes or removes `files`: throws Busy, naming the job and its operation,
    /// when a running job reads, writes or makes one of them (or a snapshot change is under way on it).
    void claim_files(const std::vector<std::string>& files, const std::string& what) const;
    /// @brief Before `what` reads `files`: throws Busy like claim_files, except that other readers share.
    void claim_for_reading(const std::vector<std::string>& files, const std::string& what) const;
    /// @brief Before `what` (Stop, Undefine, Delete) of `pool`, whose volumes are `files` and whose
    /// directory is `directory` (empty: none): throws Busy, naming the job, when a running job reads or
    /// writes one of them, makes a volume in the directory, or works on the pool or one of its volumes.
    void refuse_if_pool_used(const std::string& pool, const std::vector<std::string>& files,
                             const std::string& directory, const std::string& what) const;
    /// @brief Runs a short change of `file` (a snapshot create, revert or delete) on a worker, without a
    /// Job object, so that the bus stays answered. No job may use the file meanwhile (Busy either way).
    /// `done` runs on the main loop with what the work threw, if anything.
    void run_briefly(const std::string& file, std::function<void()> work,
                     std::function<void(std::exception_ptr)> done);

  private:
    void refuse_over_limit(std::uint32_t uid, const std::string& what) const;
    /// @brief "job PATH (OPERATION)".
    std::string describe(std::uint64_t id) const;
    void complete(std::uint64_t id, bool success, const std::string& error_name, const std::string& message);
    void schedule_tick();

    sdbus::IConnection& bus_;
    storage::Scheduler& scheduler_;
    storage::WorkerPool& workers_;
    Authorizer& authorizer_;
    std::uint64_t next_id_ = 1;
    bool ticking_ = false;
    std::map<std::uint64_t, std::unique_ptr<JobObject>> jobs_;
    std::map<std::uint64_t, std::function<void(bool)>> finishers_;
    std::map<std::uint64_t, std::vector<std::string>> files_of_;         ///< what each running job holds
    std::map<std::uint64_t, std::vector<sdbus::ObjectPath>> objects_of_; ///< its objects, while it runs
    std::map<std::string, std::uint64_t>
        busy_files_; ///< file path -> the running job that writes or makes it
    std::map<std::string, std::set<std::uint64_t>> read_files_; ///< file path -> the running jobs reading it
    std::set<std::string> briefly_busy_files_;                  ///< files a run_briefly change holds
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace vmstor::daemon
