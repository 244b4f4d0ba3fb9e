// The crash test's fault injection: counts the engine's file operations and, at the chosen one, ends
// the process (optionally dropping unsynced writes first, as a power cut may) or makes it fail.
#pragma once

#include "qcow2/file.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace crash {

enum class After { Exit, Close, PowerLoss };

struct FaultPlan {
    bool fail_sync = false;    // count syncs; else write-like operations
    std::uint64_t fail_at = 0; // 1-based; 0: never
    After after = After::Exit;
};

class FaultHook final : public vmstor::qcow2::FaultInjection {
  public:
    FaultHook(const FaultPlan& plan, std::uint64_t seed);
    int before(Op op, const std::string& path, std::uint64_t offset, std::uint64_t length) override;
    bool fired() const { return fired_; }
    std::uint64_t writes() const { return writes_; }
    std::uint64_t syncs() const { return syncs_; }

  private:
    /// What a write replaced, kept until the file is synced.
    struct Undo {
        std::string path;
        std::uint64_t offset = 0;
        std::vector<std::byte> old;
        bool dropped = false;
    };
    void remember(const std::string& path, std::uint64_t offset, std::uint64_t length);
    /// Restores the old bytes of a random part of the unsynced writes, newest first.
    void lose_unsynced();
    [[noreturn]] void crash();

    FaultPlan plan_;
    std::mt19937_64 rng_;
    std::uint64_t writes_ = 0;
    std::uint64_t syncs_ = 0;
    bool fired_ = false;
    std::vector<Undo> unsynced_;
};

} // namespace crash
