// What a job's work shares with the daemon while it runs on a worker thread: progress counters the
// main loop reads once a second, and the cancel flag it sets.
#pragma once

#include "common/error.hpp"

#include <atomic>
#include <cstdint>
#include <string>

namespace vmstor::storage {

class JobContext {
  public:
    void set_total(std::uint64_t bytes) { total_.store(bytes, std::memory_order_relaxed); }
    void set_done(std::uint64_t bytes) { done_.store(bytes, std::memory_order_relaxed); }
    void add_done(std::uint64_t bytes) { done_.fetch_add(bytes, std::memory_order_relaxed); }
    std::uint64_t total() const { return total_.load(std::memory_order_relaxed); }
    std::uint64_t done() const { return done_.load(std::memory_order_relaxed); }

    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }
    const std::atomic<bool>* cancel_flag() const { return &cancelled_; }
    /// @brief Throws Cancelled when the job was asked to stop; `what` names the job in the message.
    void stop_if_cancelled(const std::string& what) const {
        if (cancelled())
            throw vmstor::Error(ErrorCode::Cancelled, what + ": cancelled");
    }

  private:
    std::atomic<std::uint64_t> total_{0};
    std::atomic<std::uint64_t> done_{0};
    std::atomic<bool> cancelled_{false};
};

} // namespace vmstor::storage
