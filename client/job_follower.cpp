#include "job_follower.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>
#include <sdbus-c++/sdbus-c++.h>

#include "bus.hpp"
#include "vmstor-job-proxy.h"

namespace vmstor::client {

namespace {

constexpr const char* job_interface = "org.vmstor.Storage1.Job";
// How often the job's State is read again even without a signal, so that a daemon that went away or a
// missed signal cannot leave vmstorctl waiting forever.
constexpr std::chrono::milliseconds state_check_interval{2000};

struct Outcome {
    bool success = false;
    std::string error_name;
    std::string message;
};

/// @brief A job object, subscribed to its Completed and PropertiesChanged signals.
class JobProxy final
    : public sdbus::ProxyInterfaces<org::vmstor::Storage1::Job_proxy, sdbus::Properties_proxy> {
  public:
    JobProxy(sdbus::IConnection& connection, const std::string& path)
        : ProxyInterfaces(connection, service_name, path), show_progress_(isatty(STDERR_FILENO) == 1) {
        registerProxy();
    }
    ~JobProxy() {
        unregisterProxy();
        if (shown_progress_)
            std::fputs("\n", stderr);
    }

    std::optional<Outcome> outcome;

    void show_progress(double progress) {
        if (!show_progress_)
            return;
        std::fputs(fmt::format("\r{} {:3.0f}%", getObjectPath(), std::floor(progress * 100.0)).c_str(),
                   stderr);
        shown_progress_ = true;
    }

  private:
    void onCompleted(const bool& success, const std::string& error_name,
                     const std::string& message) override {
        outcome = Outcome{success, error_name, message};
    }
    void onPropertiesChanged(const std::string& interface,
                             const std::map<std::string, sdbus::Variant>& changed,
                             const std::vector<std::string>&) override {
        auto progress = changed.find("Progress");
        if (interface == job_interface && progress != changed.end())
            show_progress(progress->second.get<double>());
    }

    bool show_progress_;
    bool shown_progress_ = false;
};

/// @brief The outcome the job's State tells, for when its Completed signal came before we listened.
std::optional<Outcome> outcome_from_state(const std::string& path, const std::string& state) {
    if (state == "running")
        return std::nullopt;
    if (state == "completed")
        return Outcome{true, {}, {}};
    if (state == "cancelled")
        return Outcome{false, "org.vmstor.Storage1.Error.Cancelled", "job " + path + " was cancelled"};
    return Outcome{false, "org.vmstor.Storage1.Error.Failed",
                   "job " + path + " ended in state '" + state + "' before vmstorctl could hear why"};
}

/// @brief Dispatches what arrived on the bus, or waits for it at most `limit`.
void dispatch_or_wait(sdbus::IConnection& bus, std::chrono::milliseconds limit) {
    if (bus.processPendingRequest())
        return;
    auto poll_data = bus.getEventLoopPollData();
    auto timeout = limit;
    if (poll_data.timeout_usec != UINT64_MAX) {
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        auto now_usec =
            static_cast<std::uint64_t>(now.tv_sec) * 1000000 + static_cast<std::uint64_t>(now.tv_nsec) / 1000;
        auto until_usec = poll_data.timeout_usec > now_usec ? poll_data.timeout_usec - now_usec : 0;
        timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::microseconds(until_usec)));
    }
    pollfd descriptor{poll_data.fd, poll_data.events, 0};
    poll(&descriptor, 1, static_cast<int>(timeout.count()));
}

} // namespace

bool is_job_path(const std::string& path) {
    return path.starts_with(std::string(root_object_path) + "/job/");
}

void follow_job(sdbus::IConnection& bus, const std::string& path) {
    JobProxy job(bus, path);
    auto next_state_check = std::chrono::steady_clock::now();
    while (!job.outcome) {
        if (std::chrono::steady_clock::now() >= next_state_check) {
            job.outcome = outcome_from_state(path, job.State());
            next_state_check = std::chrono::steady_clock::now() + state_check_interval;
            continue;
        }
        dispatch_or_wait(bus, state_check_interval);
    }
    // Drain what is already queued, so that a Completed signal that came with the last State wins.
    while (bus.processPendingRequest()) {
    }
    if (!job.outcome->success)
        throw sdbus::Error(job.outcome->error_name, job.outcome->message);
}

} // namespace vmstor::client
