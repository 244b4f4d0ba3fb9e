// Answers that grow with an image (Map, Check, Measure, Info of a chain) are computed on a small pool of
// threads of their own, and sent from the main loop: the bus thread never waits for them, and they never
// wait behind a long job for a worker.
#pragma once

#include "error_boundary.hpp"
#include "storage/model.hpp"
#include "storage/worker_pool.hpp"

#include <exception>
#include <malloc.h>
#include <memory>
#include <sdbus-c++/MethodResult.h>
#include <type_traits>
#include <utility>

namespace vmstor::daemon {

/// Threads that compute replies: a few, so that many large requests at once queue instead of each
/// holding the memory of its answer.
inline constexpr unsigned reply_threads = 2;

class ReplyWorkers {
  public:
    explicit ReplyWorkers(storage::Scheduler& loop) : loop_(loop), pool_(reply_threads) {}

    /// @brief Runs `work()` on a reply thread, then replies to `result` on the main loop with
    /// `convert(what it returned)`, or with the named error of what either threw. `work` must touch nothing
    /// the main loop owns; what needs the bus (sdbus::Variant, which is an sd-bus message) is made by
    /// `convert`.
    template <typename Result, typename Work, typename Convert>
    void reply(sdbus::Result<Result>&& result, Work work, Convert convert) {
        using Value = decltype(work());
        auto reply = std::make_shared<sdbus::Result<Result>>(std::move(result));
        pool_.submit([this, reply, work = std::move(work), convert = std::move(convert)]() mutable {
            std::shared_ptr<Value> value;
            std::exception_ptr error;
            try {
                value = std::make_shared<Value>(work());
            } catch (...) {
                error = std::current_exception();
            }
            // Moved: the call is released on the main loop only (sd-bus is not thread-safe).
            loop_.post([reply = std::move(reply), value = std::move(value), error, convert]() mutable {
                try {
                    if (error)
                        std::rethrow_exception(error);
                    reply->returnResults(convert(std::move(*value)));
                } catch (...) {
                    without_throwing("a reply",
                                     [&] { reply->returnError(to_dbus_error(std::current_exception())); });
                }
                // What one answer took (up to a few tens of MB for a page of Map) goes back to the system.
                value.reset();
                malloc_trim(0);
            });
        });
    }

    /// @brief reply() of what `work()` returns as it is.
    template <typename Result, typename Work> void reply(sdbus::Result<Result>&& result, Work work) {
        reply(std::move(result), std::move(work), [](Result&& value) { return std::move(value); });
    }

    /// @brief Runs `work()` on a reply thread, then `then(value, error)` on the main loop: `error` is what
    /// `work` threw (`value` is then default-made). For work that is quick but must not hold the bus
    /// thread (a helper program), before the call goes on (polkit, the change).
    template <typename Work, typename Then> void run(Work work, Then then) {
        using Value = decltype(work());
        pool_.submit([this, work = std::move(work), then = std::move(then)]() mutable {
            Value value{};
            std::exception_ptr error;
            try {
                value = work();
            } catch (...) {
                error = std::current_exception();
            }
            // `then` (which may hold the call) moves on to the main loop: sd-bus is not thread-safe.
            loop_.post([value = std::move(value), error, then = std::move(then)]() mutable {
                without_throwing("a reply", [&] { then(std::move(value), error); });
            });
        });
    }

  private:
    storage::Scheduler& loop_;
    storage::WorkerPool pool_;
};

} // namespace vmstor::daemon
