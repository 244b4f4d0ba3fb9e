// A bounded pool of threads for long operations, so that many big copies at once neither starve the
// D-Bus loop nor the machine.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace vmstor::storage {

class WorkerPool {
  public:
    /// @brief Starts `threads` workers (0: one per core).
    explicit WorkerPool(unsigned threads = 0);
    /// @brief Runs what was queued to its end, then joins.
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void submit(std::function<void()> task);
    /// @brief Runs `task` at once on a thread of its own, outside the bound: for work that waits on a
    /// caller (a stream job's fd), which must not hold a worker that other work needs. Joined with the rest.
    /// Called from one thread only (the main loop).
    void run_apart(std::function<void()> task);
    unsigned size() const { return static_cast<unsigned>(threads_.size()); }

  private:
    void work();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
    struct Apart {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    std::vector<Apart> apart_; ///< run_apart's threads; those done are joined by the next run_apart
};

} // namespace vmstor::storage
