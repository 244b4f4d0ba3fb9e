// A bounded pool of threads for long operations, so that many big copies at once neither starve the
// D-Bus loop nor the machine.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
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
    unsigned size() const { return static_cast<unsigned>(threads_.size()); }

  private:
    void work();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

} // namespace vmstor::storage
