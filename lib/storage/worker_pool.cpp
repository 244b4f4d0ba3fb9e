#include "worker_pool.hpp"

namespace vmstor::storage {

WorkerPool::WorkerPool(unsigned threads) {
    if (threads == 0)
        threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < threads; ++i)
        threads_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_)
        thread.join();
    for (auto& apart : apart_)
        apart.thread.join();
}

void WorkerPool::submit(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(std::move(task));
    }
    wake_.notify_one();
}

void WorkerPool::run_apart(std::function<void()> task) {
    std::erase_if(apart_, [](Apart& apart) {
        if (!apart.done->load())
            return false;
        apart.thread.join();
        return true;
    });
    auto done = std::make_shared<std::atomic<bool>>(false);
    apart_.push_back({std::thread([task = std::move(task), done] {
                          task();
                          done->store(true);
                      }),
                      done});
}

void WorkerPool::work() {
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty())
                return;
            task = std::move(queue_.front());
            queue_.pop_front();
        }
        task();
    }
}

} // namespace vmstor::storage
