#include "job_registry.hpp"

#include "authorizer.hpp"
#include "caller.hpp"
#include "error_boundary.hpp"
#include "object_paths.hpp"
#include "storage/image_lock.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace vmstor::daemon {

namespace {

constexpr const char* job_interface = "org.vmstor.Storage1.Job";
constexpr std::chrono::seconds finished_job_lifetime{60};
constexpr std::chrono::milliseconds tick_interval{1000};

std::uint64_t now_usec() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

std::uint64_t id_of(const std::string& path) {
    auto slash = path.rfind('/');
    return std::stoull(path.substr(slash + 1));
}

} // namespace

JobObject::JobObject(sdbus::IConnection& bus, std::string path, const JobSpec& spec, Authorizer& authorizer)
    : AdaptorInterfaces(bus, path), authorizer_(authorizer), path_(std::move(path)),
      operation_(spec.operation), objects_(spec.objects), started_by_uid_(spec.started_by_uid),
      cancelable_(spec.cancelable), start_time_(now_usec()) {
    registerAdaptor();
    emitInterfacesAddedSignal();
}

JobObject::~JobObject() {
    for (auto& waiter : waiters_)
        without_throwing("a waiting reply", [&] {
            waiter.returnError(to_dbus_error(vmstor::Error(ErrorCode::Cancelled, "vmstord is stopping")));
        });
    without_throwing("InterfacesRemoved", [this] { emitInterfacesRemovedSignal(); });
    unregisterAdaptor();
}

double JobObject::Progress() {
    if (state_ == "completed")
        return 1.0;
    std::uint64_t total = context_->total();
    return total ? std::min(1.0, static_cast<double>(context_->done()) / static_cast<double>(total)) : 0.0;
}

void JobObject::tick() {
    auto now = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(now - last_tick_).count();
    std::uint64_t done = context_->done();
    if (seconds > 0) {
        double instant = static_cast<double>(done - std::min(done, last_done_)) / seconds;
        // Smoothed, so that one slow second does not make the expected end jump about.
        rate_ = rate_ ? static_cast<std::uint64_t>(0.5 * static_cast<double>(rate_) + 0.5 * instant)
                      : static_cast<std::uint64_t>(instant);
    }
    last_tick_ = now;
    last_done_ = done;
    std::uint64_t total = context_->total();
    expected_end_ = rate_ && total > done ? now_usec() + (total - done) * 1000000 / rate_ : 0;
    emitPropertiesChangedSignal(
        job_interface, {"Progress", "ProgressValid", "Bytes", "BytesDone", "Rate", "ExpectedEndTime"});
}

void JobObject::finish(const std::string& state, const std::string& error_name, const std::string& message) {
    state_ = state;
    rate_ = 0;
    expected_end_ = now_usec();
    error_name_ = error_name;
    error_message_ = message;
    emitPropertiesChangedSignal(
        job_interface, {"State", "Progress", "ProgressValid", "BytesDone", "Rate", "ExpectedEndTime"});
    emitCompleted(state == "completed", error_name, message);
    for (auto& waiter : waiters_) {
        if (state == "completed")
            waiter.returnResults(sdbus::ObjectPath(path_));
        else
            waiter.returnError(sdbus::Error(error_name, message));
    }
    waiters_.clear();
}

void JobObject::reply_when_done(sdbus::Result<sdbus::ObjectPath>&& result) {
    if (running())
        waiters_.push_back(std::move(result));
    else if (state_ == "completed")
        result.returnResults(sdbus::ObjectPath(path_));
    else
        result.returnError(sdbus::Error(error_name_, error_message_));
}

void JobObject::Cancel(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "Job.Cancel options", {});
        if (!running())
            throw vmstor::Error(
                ErrorCode::InvalidArgument,
                fmt::format("cannot cancel job {} ({}): it has already {}", path_, operation_, state_));
        if (!cancelable_)
            throw vmstor::Error(
                ErrorCode::NotSupported,
                fmt::format("cannot cancel job {} ({}): this operation cannot be stopped half-way", path_,
                            operation_));
        Caller caller = Caller::of(getObject());
        auto cancel = [context = context_](const Caller&) {
            context->cancel();
        };
        // The job's starter may cancel it; anyone else needs manage-volumes (root always has it).
        if (caller.uid == started_by_uid_) {
            cancel(caller);
            result.returnResults();
            return;
        }
        reply_when_authorized(authorizer_, caller, alive_, std::move(result), Action::ManageVolumes,
                              {{"job", path_}}, cancel);
    });
}

JobRegistry::JobRegistry(sdbus::IConnection& bus, storage::Scheduler& scheduler, storage::WorkerPool& workers,
                         Authorizer& authorizer)
    : bus_(bus), scheduler_(scheduler), workers_(workers), authorizer_(authorizer) {}

JobRegistry::~JobRegistry() {
    for (auto& [id, job] : jobs_)
        job->context()->cancel();
}

std::string JobRegistry::describe(std::uint64_t id) const {
    auto it = jobs_.find(id);
    return fmt::format("job {} ({})", job_path(id), it == jobs_.end() ? "ended" : it->second->operation());
}

void JobRegistry::claim_for_reading(const std::vector<std::string>& files, const std::string& what) const {
    for (const std::string& file : files) {
        if (auto holder = busy_files_.find(file); holder != busy_files_.end())
            throw vmstor::Error(ErrorCode::Busy, fmt::format("cannot {} '{}': {} is writing or making it",
                                                             what, file, describe(holder->second)));
        if (briefly_busy_files_.contains(file))
            throw vmstor::Error(ErrorCode::Busy,
                                fmt::format("cannot {} '{}': a snapshot change is under way", what, file));
    }
}

void JobRegistry::claim_files(const std::vector<std::string>& files, const std::string& what) const {
    claim_for_reading(files, what);
    for (const std::string& file : files)
        if (auto readers = read_files_.find(file); readers != read_files_.end())
            throw vmstor::Error(ErrorCode::Busy, fmt::format("cannot {} '{}': {} is reading it", what, file,
                                                             describe(*readers->second.begin())));
}

void JobRegistry::refuse_if_pool_used(const std::string& pool, const std::vector<std::string>& files,
                                      const std::string& directory, const std::string& what) const {
    claim_files(files, fmt::format("{} pool '{}' with its volume", what, pool));
    const std::string object = pool_path(pool);
    auto in_pool = [&](const std::string& path) {
        return (!directory.empty() && path.starts_with(directory + "/")) || path == object ||
               path.starts_with(object + "/");
    };
    for (const auto& [id, held] : files_of_) {
        bool uses = std::any_of(held.begin(), held.end(), in_pool);
        for (const sdbus::ObjectPath& path : objects_of_.at(id))
            uses = uses || in_pool(path);
        if (uses)
            throw vmstor::Error(
                ErrorCode::Busy,
                fmt::format("cannot {} pool '{}': {} works on it; wait for it to end or cancel it", what,
                            pool, describe(id)));
    }
    for (const std::string& file : briefly_busy_files_)
        if (in_pool(file))
            throw vmstor::Error(
                ErrorCode::Busy,
                fmt::format("cannot {} pool '{}': a snapshot change of '{}' is under way", what, pool, file));
}

void JobRegistry::run_briefly(const std::string& file, std::function<void()> work,
                              std::function<void(std::exception_ptr)> done) {
    claim_files({file}, "change the snapshots of");
    briefly_busy_files_.insert(file);
    std::weak_ptr<bool> alive = alive_;
    workers_.submit([this, alive, file, work = std::move(work), done = std::move(done)] {
        std::exception_ptr error;
        try {
            work();
        } catch (...) {
            error = std::current_exception();
        }
        scheduler_.post([this, alive, file, done, error] {
            if (alive.expired())
                return;
            briefly_busy_files_.erase(file);
            done(error);
        });
    });
}

void JobRegistry::refuse_over_limit(std::uint32_t uid, const std::string& what) const {
    std::size_t limit = uid == 0 ? max_jobs_for_root : max_jobs_per_caller;
    std::size_t running = 0;
    for (const auto& [id, job] : jobs_)
        running += job->running() && job->started_by_uid() == uid;
    if (running >= limit)
        throw vmstor::Error(ErrorCode::LimitExceeded,
                            fmt::format("cannot start {}: uid {} has {} jobs running or queued, the most one "
                                        "caller may have (root: {}, others: {}); wait for one to end or "
                                        "cancel one",
                                        what, uid, running, max_jobs_for_root, max_jobs_per_caller));
}

sdbus::ObjectPath JobRegistry::start(JobSpec spec) {
    refuse_over_limit(spec.started_by_uid, spec.operation);
    std::vector<std::string> written = spec.files;
    written.insert(written.end(), spec.new_files.begin(), spec.new_files.end());
    claim_files(written, "start " + spec.operation + " on");
    claim_for_reading(spec.read_files, "start " + spec.operation + " reading");
    std::uint64_t id = next_id_++;
    for (const std::string& file : written)
        busy_files_[file] = id;
    for (const std::string& file : spec.read_files)
        read_files_[file].insert(id);
    std::vector<std::string> held = written;
    held.insert(held.end(), spec.read_files.begin(), spec.read_files.end());
    files_of_[id] = std::move(held);
    objects_of_[id] = spec.objects;
    auto job = std::make_unique<JobObject>(bus_, job_path(id), spec, authorizer_);
    std::shared_ptr<storage::JobContext> context = job->context();
    context->limit_rate(spec.rate_limit);
    jobs_[id] = std::move(job);
    finishers_[id] = std::move(spec.finished);
    std::weak_ptr<bool> alive = alive_;
    std::vector<std::string> read_locked =
        spec.lock_read_files ? spec.read_files : std::vector<std::string>{};
    std::vector<std::string> write_locked = spec.lock_files ? spec.files : std::vector<std::string>{};
    auto run = [this, alive, id, context, files = std::move(write_locked),
                read_locked = std::move(read_locked), work = std::move(spec.work)]() mutable {
        bool success = true;
        std::string error_name;
        std::string message;
        try {
            context->stop_if_cancelled("job " + std::to_string(id));
            // QEMU's locks on what the job writes: a VM cannot open it for writing meanwhile.
            std::vector<std::unique_ptr<storage::ImageWriteLock>> locks;
            for (const std::string& file : files)
                locks.push_back(std::make_unique<storage::ImageWriteLock>(file));
            // And on what it reads: nobody may write it meanwhile, as qemu-img convert's source.
            std::vector<std::unique_ptr<storage::ImageReadLock>> read_locks;
            for (const std::string& file : read_locked)
                read_locks.push_back(std::make_unique<storage::ImageReadLock>(file));
            context->begin();
            work(*context);
        } catch (const vmstor::Error& e) {
            success = false;
            error_name = std::string(error_prefix) + std::string(error_code_name(e.code()));
            message = e.what();
        } catch (const std::exception& e) {
            success = false;
            error_name = std::string(error_prefix) + "Failed";
            message = std::string("internal error: ") + e.what();
        }
        // Asked to stop, it stopped: however the work noticed (a closed stream, an interrupted copy).
        if (!success && context->cancelled() &&
            error_name != std::string(error_prefix) + std::string(error_code_name(ErrorCode::Cancelled))) {
            error_name = std::string(error_prefix) + std::string(error_code_name(ErrorCode::Cancelled));
            message = fmt::format("job {}: cancelled (then: {})", id, message);
        }
        // What the work holds (a new volume's unnamed file and its space) is gone before the job ends.
        work = nullptr;
        scheduler_.post([this, alive, id, success, error_name, message] {
            if (!alive.expired())
                complete(id, success, error_name, message);
        });
    };
    if (spec.waits_on_caller)
        workers_.run_apart(std::move(run));
    else
        workers_.submit(std::move(run));
    schedule_tick();
    return sdbus::ObjectPath(job_path(id));
}

void JobRegistry::complete(std::uint64_t id, bool success, const std::string& error_name,
                           const std::string& message) {
    auto it = jobs_.find(id);
    if (it == jobs_.end())
        return;
    bool cancelled = !success && error_name == std::string(error_prefix) + "Cancelled";
    for (const std::string& file : files_of_[id]) {
        if (auto writer = busy_files_.find(file); writer != busy_files_.end() && writer->second == id)
            busy_files_.erase(writer);
        if (auto readers = read_files_.find(file); readers != read_files_.end()) {
            readers->second.erase(id);
            if (readers->second.empty())
                read_files_.erase(readers);
        }
    }
    files_of_.erase(id);
    objects_of_.erase(id);
    std::string error = error_name;
    std::string what = message;
    if (auto finisher = finishers_.extract(id); finisher && finisher.mapped()) {
        try {
            finisher.mapped()(success);
        } catch (const vmstor::Error& e) {
            // What the work did is not what the caller asked for (its pool went meanwhile): not a success.
            if (success) {
                success = false;
                error = std::string(error_prefix) + std::string(error_code_name(e.code()));
                what = e.what();
            } else {
                spdlog::warn("after job {}: {}", id, e.what());
            }
        } catch (const std::exception& e) {
            spdlog::warn("after job {}: {}", id, e.what());
        }
    }
    spdlog::info("job {} ({}) {}{}{}", id, it->second->operation(),
                 success ? "completed" : (cancelled ? "cancelled" : "failed"), success ? "" : ": ", what);
    it->second->finish(success ? "completed" : (cancelled ? "cancelled" : "failed"), error, what);
    scheduler_.after(finished_job_lifetime, [this, id] { jobs_.erase(id); });
}

void JobRegistry::schedule_tick() {
    if (std::exchange(ticking_, true))
        return;
    scheduler_.after(tick_interval, [this] {
        ticking_ = false;
        bool any_running = false;
        for (auto& [id, job] : jobs_) {
            if (!job->running())
                continue;
            job->tick();
            any_running = true;
        }
        if (any_running)
            schedule_tick();
    });
}

void JobRegistry::reply_when_done(const sdbus::ObjectPath& job, sdbus::Result<sdbus::ObjectPath>&& result) {
    auto it = jobs_.find(id_of(job));
    if (it != jobs_.end())
        it->second->reply_when_done(std::move(result));
}

JobOptions JobOptions::from(const Options& options) {
    JobOptions job;
    job.wait = options.flag("wait", false);
    if (auto rate = options.u64("rate_limit")) {
        if (*rate == 0)
            throw vmstor::Error(ErrorCode::InvalidArgument,
                                "option 'rate_limit' is 0 bytes per second; leave it out for no limit");
        job.rate_limit = *rate;
    }
    return job;
}

std::vector<OptionSpec> JobOptions::keys_with(std::vector<OptionSpec> own) {
    own.push_back({"wait", "b"});
    own.push_back({"rate_limit", "t"});
    return own;
}

void JobRegistry::start_and_reply(JobSpec spec, const JobOptions& options,
                                  sdbus::Result<sdbus::ObjectPath>&& result) {
    spec.rate_limit = options.rate_limit;
    sdbus::ObjectPath path = start(std::move(spec));
    if (options.wait)
        reply_when_done(path, std::move(result));
    else
        result.returnResults(path);
}

std::vector<sdbus::ObjectPath> JobRegistry::paths() const {
    std::vector<sdbus::ObjectPath> out;
    for (const auto& [id, job] : jobs_)
        out.emplace_back(job_path(id));
    return out;
}

} // namespace vmstor::daemon
