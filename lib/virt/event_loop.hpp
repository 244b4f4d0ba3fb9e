// libvirt's default event loop on a thread of its own: it delivers pool events, keepalives and the
// connection's close callback.
#pragma once

#include <atomic>
#include <thread>

namespace vmstor::virt {

/// @brief Registers libvirt's default event implementation (once per process, before any connection is
/// opened) and runs it until destroyed.
class EventLoop {
  public:
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

  private:
    void run();

    std::atomic<bool> stopping_{false};
    int wake_timer_ = -1;
    std::thread thread_;
};

} // namespace vmstor::virt
