#include "main_loop.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <csignal>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

namespace vmstor::daemon {

namespace {

std::uint64_t monotonic_usec() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000000 + static_cast<std::uint64_t>(now.tv_nsec) / 1000;
}

} // namespace

MainLoop::MainLoop(sdbus::IConnection& bus) : bus_(bus) {
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0)
        throw system_error(errno, "cannot create the main loop's eventfd");
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    // Blocked here, before libvirt's and sd-bus's threads exist, so that only signal_fd_ sees them.
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal_fd_ = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd_ < 0)
        throw system_error(errno, "cannot create the main loop's signalfd");
}

MainLoop::~MainLoop() {
    close(wake_fd_);
    close(signal_fd_);
}

void MainLoop::post(std::function<void()> task) {
    {
        std::lock_guard lock(posted_mutex_);
        posted_.push_back(std::move(task));
    }
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t written = write(wake_fd_, &one, sizeof one);
}

void MainLoop::after(std::chrono::milliseconds delay, std::function<void()> task) {
    timers_.emplace(std::chrono::steady_clock::now() + delay, std::move(task));
}

void MainLoop::run_posted() {
    std::uint64_t count = 0;
    [[maybe_unused]] ssize_t got = read(wake_fd_, &count, sizeof count);
    std::deque<std::function<void()>> tasks;
    {
        std::lock_guard lock(posted_mutex_);
        tasks.swap(posted_);
    }
    for (auto& task : tasks)
        task();
}

void MainLoop::run_due_timers() {
    auto now = std::chrono::steady_clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
        auto task = std::move(timers_.begin()->second);
        timers_.erase(timers_.begin());
        task();
    }
}

int MainLoop::poll_timeout_ms(std::uint64_t bus_deadline_usec) const {
    std::int64_t timeout = -1;
    if (bus_deadline_usec != UINT64_MAX) {
        std::uint64_t now = monotonic_usec();
        timeout =
            bus_deadline_usec > now ? static_cast<std::int64_t>((bus_deadline_usec - now + 999) / 1000) : 0;
    }
    if (!timers_.empty()) {
        auto until = std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first -
                                                                  std::chrono::steady_clock::now());
        std::int64_t timer = std::max<std::int64_t>(0, until.count());
        timeout = timeout < 0 ? timer : std::min(timeout, timer);
    }
    return static_cast<int>(std::min<std::int64_t>(timeout, 60000));
}

void MainLoop::run() {
    for (;;) {
        while (bus_.processPendingRequest()) {
        }
        run_due_timers();
        auto bus = bus_.getEventLoopPollData();
        pollfd fds[3] = {{bus.fd, bus.events, 0}, {wake_fd_, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
        int ready = poll(fds, 3, poll_timeout_ms(bus.timeout_usec));
        if (ready < 0 && errno != EINTR)
            throw system_error(errno, "poll failed in the main loop");
        if (fds[2].revents & POLLIN) {
            signalfd_siginfo info{};
            [[maybe_unused]] ssize_t got = read(signal_fd_, &info, sizeof info);
            spdlog::info("received signal {}, stopping", info.ssi_signo);
            return;
        }
        if (fds[1].revents & POLLIN)
            run_posted();
    }
}

} // namespace vmstor::daemon
