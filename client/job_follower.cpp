#include "job_follower.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <poll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>
#include <sdbus-c++/sdbus-c++.h>

#include "bus.hpp"
#include "job_progress.hpp"
#include "output.hpp"

namespace vmstor::client {

namespace {

// How often the job's State is read again even without a signal, so that a daemon that went away or a
// missed signal cannot leave vmstorctl waiting forever.
constexpr std::chrono::milliseconds state_check_interval{2000};
// How often a plain progress line is written when stderr is not a terminal.
constexpr std::chrono::seconds plain_line_interval{5};
constexpr std::size_t default_terminal_width = 80;

volatile std::sig_atomic_t interrupt_requested = 0;

extern "C" void on_interrupt_signal(int) {
    interrupt_requested = 1;
}

/// @brief Catches SIGINT while it lives (without SA_RESTART, so that poll() wakes up); the first Ctrl-C
/// sets the flag and restores the default, so that a second one ends vmstorctl at once.
class InterruptCatcher {
  public:
    InterruptCatcher() {
        interrupt_requested = 0;
        struct sigaction action {};
        action.sa_handler = on_interrupt_signal;
        action.sa_flags = SA_RESETHAND;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &previous_);
    }
    ~InterruptCatcher() { sigaction(SIGINT, &previous_, nullptr); }
    InterruptCatcher(const InterruptCatcher&) = delete;
    InterruptCatcher& operator=(const InterruptCatcher&) = delete;

  private:
    struct sigaction previous_ {};
};

struct Outcome {
    bool success = false;
    std::string error_name;
    std::string message;
};

std::uint64_t now_us() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

std::size_t terminal_width() {
    winsize size{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1)
        return size.ws_col - 1; // the last column would wrap on some terminals
    return default_terminal_width - 1;
}

/// @brief "job 7 clone": how the progress lines name a job.
std::string job_label(const std::string& path, const std::string& operation) {
    auto slash = path.rfind('/');
    return "job " + path.substr(slash + 1) + (operation.empty() ? "" : " " + operation);
}

/// @brief A job object, subscribed to its Completed and PropertiesChanged signals, showing its progress.
class FollowedJob final
    : public sdbus::ProxyInterfaces<org::vmstor::Storage1::Job_proxy, sdbus::Properties_proxy> {
  public:
    FollowedJob(sdbus::IConnection& connection, const std::string& path)
        : ProxyInterfaces(connection, service_name, path), terminal_(isatty(STDERR_FILENO) == 1) {
        registerProxy();
    }
    ~FollowedJob() { unregisterProxy(); }
    FollowedJob(const FollowedJob&) = delete;
    FollowedJob& operator=(const FollowedJob&) = delete;

    std::optional<Outcome> outcome;

    /// @brief Reads every property (one call); returns the State.
    std::string read_all() {
        auto properties = GetAll(job_interface);
        update(properties);
        auto state = properties.find("State");
        return state != properties.end() ? state->second.get<std::string>() : std::string("running");
    }

    /// @brief Redraws the bar, or writes a plain line when one is due (or `last`).
    void show(bool last = false) {
        auto now = std::chrono::steady_clock::now();
        auto progress = progress_;
        if (last) // no rate or time left once it is over
            progress.rate = progress.expected_end_us = 0;
        auto suffix = last ? std::string("  completed") : std::string();
        if (terminal_) {
            auto used = label().size() + suffix.size() + 1;
            auto columns = terminal_width();
            auto width = columns > used ? columns - used : 1;
            auto line = progress_bar_line(progress, now_us(), width) + suffix;
            std::fputs(("\r" + label() + " " + line + "\x1b[K").c_str(), stderr);
            shown_ = true;
            if (last)
                end_line();
            return;
        }
        if (!last && now < next_plain_line_)
            return;
        next_plain_line_ = now + plain_line_interval;
        std::fputs(fmt::format("vmstorctl: {}: {}{}\n", label(), progress_summary(progress, now_us()), suffix)
                       .c_str(),
                   stderr);
    }

    /// @brief Ends the bar's line, so that what follows starts on a line of its own.
    void end_line() {
        if (shown_)
            std::fputs("\n", stderr);
        shown_ = false;
    }

  private:
    void onCompleted(const bool& success, const std::string& error_name,
                     const std::string& message) override {
        outcome = Outcome{success, error_name, message};
    }
    void onPropertiesChanged(const std::string& interface,
                             const std::map<std::string, sdbus::Variant>& changed,
                             const std::vector<std::string>&) override {
        if (interface != job_interface)
            return;
        update(changed);
        if (!interrupt_requested) // after Ctrl-C, the "cancelling" line stays the last one
            show();
    }

    void update(const std::map<std::string, sdbus::Variant>& properties) {
        for (const auto& [name, value] : properties) {
            if (name == "Operation")
                operation_ = value.get<std::string>();
            else if (name == "Progress")
                progress_.progress = value.get<double>();
            else if (name == "ProgressValid")
                progress_.progress_valid = value.get<bool>();
            else if (name == "Bytes")
                progress_.bytes = value.get<std::uint64_t>();
            else if (name == "BytesDone")
                progress_.bytes_done = value.get<std::uint64_t>();
            else if (name == "Rate")
                progress_.rate = value.get<std::uint64_t>();
            else if (name == "ExpectedEndTime")
                progress_.expected_end_us = value.get<std::uint64_t>();
        }
    }

    std::string label() const { return job_label(getObjectPath(), operation_); }

    bool terminal_;
    bool shown_ = false;
    std::string operation_;
    JobProgress progress_;
    std::chrono::steady_clock::time_point next_plain_line_ =
        std::chrono::steady_clock::now() + plain_line_interval;
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

/// @brief Dispatches what arrived on the bus, or waits for it at most `limit` (less after a signal).
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

/// @brief Asks the daemon to cancel the job; a refusal is said on stderr and the wait goes on.
void request_cancel(FollowedJob& job) {
    job.end_line();
    std::fputs(fmt::format("vmstorctl: cancelling {} ...\n", job.getObjectPath()).c_str(), stderr);
    try {
        job.Cancel({});
    } catch (const sdbus::Error& error) {
        std::fputs((error_line(error.getName(), error.getMessage()) + "\n").c_str(), stderr);
    }
}

} // namespace

bool is_job_path(const std::string& path) {
    return path.starts_with(std::string(root_object_path) + "/job/");
}

void follow_job(sdbus::IConnection& bus, const std::string& path, OnInterrupt on_interrupt) {
    InterruptCatcher interrupts;
    FollowedJob job(bus, path);
    bool interrupted = false;
    job.outcome = outcome_from_state(path, job.read_all());
    auto next_state_check = std::chrono::steady_clock::now() + state_check_interval;
    while (!job.outcome) {
        if (interrupt_requested && !interrupted) {
            interrupted = true;
            if (on_interrupt == OnInterrupt::StopWaiting) {
                job.end_line();
                throw Interrupted("Interrupted", "stopped waiting for " + path + "; the job goes on");
            }
            request_cancel(job);
        }
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
    if (job.outcome->success) {
        job.read_all(); // the last PropertiesChanged may have come before the end
        job.show(true);
        return;
    }
    job.end_line();
    if (interrupted)
        throw Interrupted("Cancelled", job.outcome->message.empty() ? "job " + path + " was cancelled"
                                                                    : job.outcome->message);
    throw sdbus::Error(job.outcome->error_name, job.outcome->message);
}

} // namespace vmstor::client
