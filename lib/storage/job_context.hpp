// What a job's work shares with the daemon while it runs on a worker thread: progress counters the
// main loop reads once a second, and the cancel flag it sets.
#pragma once

#include "common/error.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace vmstor::storage {

class JobContext {
  public:
    void set_total(std::uint64_t bytes) { total_.store(bytes, std::memory_order_relaxed); }
    void set_done(std::uint64_t bytes) {
        done_.store(bytes, std::memory_order_relaxed);
        throttle(bytes);
    }
    void add_done(std::uint64_t bytes) {
        throttle(done_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
    }
    std::uint64_t total() const { return total_.load(std::memory_order_relaxed); }
    std::uint64_t done() const { return done_.load(std::memory_order_relaxed); }

    /// @brief Caps the job at `bytes_per_second` of progress (0: no cap); the work thread that reports
    /// progress sleeps while it is ahead of the cap.
    void limit_rate(std::uint64_t bytes_per_second) { rate_limit_ = bytes_per_second; }
    std::uint64_t rate_limit() const { return rate_limit_; }
    /// @brief Marks the moment the work starts on its worker thread; the rate cap counts from here.
    void begin() { started_ = std::chrono::steady_clock::now(); }

    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }
    const std::atomic<bool>* cancel_flag() const { return &cancelled_; }
    /// @brief Throws Cancelled when the job was asked to stop; `what` names the job in the message.
    void stop_if_cancelled(const std::string& what) const {
        if (cancelled())
            throw vmstor::Error(ErrorCode::Cancelled, what + ": cancelled");
    }

  private:
    void throttle(std::uint64_t done) const {
        if (rate_limit_ == 0)
            return;
        using namespace std::chrono;
        auto due = started_ + duration_cast<steady_clock::duration>(duration<double>(
                                  static_cast<double>(done) / static_cast<double>(rate_limit_)));
        // Short naps so that a cancel is noticed within a tenth of a second.
        for (auto now = steady_clock::now(); now < due && !cancelled(); now = steady_clock::now())
            std::this_thread::sleep_for(std::min<steady_clock::duration>(due - now, milliseconds(100)));
    }

    std::uint64_t rate_limit_ = 0; // set before the work starts, read only by the work
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::atomic<std::uint64_t> total_{0};
    std::atomic<std::uint64_t> done_{0};
    std::atomic<bool> cancelled_{false};
};

} // namespace vmstor::storage
