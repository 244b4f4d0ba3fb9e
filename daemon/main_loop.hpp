// The daemon's one thread of control: D-Bus requests, work posted from libvirt's event thread, timers,
// and SIGTERM/SIGINT, all dispatched from a single poll(2).
#pragma once

#include "storage/model.hpp"

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <sdbus-c++/IConnection.h>

namespace vmstor::daemon {

class MainLoop : public storage::Scheduler {
  public:
    explicit MainLoop(sdbus::IConnection& bus);
    ~MainLoop() override;
    MainLoop(const MainLoop&) = delete;
    MainLoop& operator=(const MainLoop&) = delete;

    void post(std::function<void()> task) override;
    void after(std::chrono::milliseconds delay, std::function<void()> task) override;

    /// @brief Dispatches until SIGTERM or SIGINT arrives (both are blocked for every thread started later).
    void run();

  private:
    void run_posted();
    void run_due_timers();
    int poll_timeout_ms(std::uint64_t bus_deadline_usec) const;

    sdbus::IConnection& bus_;
    int wake_fd_ = -1;
    int signal_fd_ = -1;
    std::mutex posted_mutex_;
    std::deque<std::function<void()>> posted_;
    std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> timers_;
};

} // namespace vmstor::daemon
