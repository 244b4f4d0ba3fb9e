#include "event_loop.hpp"

#include "errors.hpp"

#include <libvirt/libvirt.h>
#include <spdlog/spdlog.h>

namespace vmstor::virt {

namespace {
// A disabled timer; enabling it with timeout 0 makes virEventRunDefaultImpl return at once.
void wake(int, void*) {}
} // namespace

EventLoop::EventLoop() {
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
        throw last_error("cannot start libvirt's event loop");
    wake_timer_ = virEventAddTimeout(-1, wake, nullptr, nullptr);
    thread_ = std::thread([this] { run(); });
}

EventLoop::~EventLoop() {
    stopping_ = true;
    virEventUpdateTimeout(wake_timer_, 0);
    thread_.join();
    virEventRemoveTimeout(wake_timer_);
}

void EventLoop::run() {
    while (!stopping_) {
        if (virEventRunDefaultImpl() < 0)
            spdlog::warn("libvirt event loop iteration failed");
    }
}

} // namespace vmstor::virt
