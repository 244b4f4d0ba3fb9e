// The crash test's workload: a scripted, seeded sequence of guest writes, flushes, snapshot create and
// delete, resize, commit and convert on DIR/disk.qcow2 (backed by DIR/base.qcow2), reported line by line
// on stdout so that run_crash.py knows what was issued and what was acknowledged when the process died.
//
//   crash_driver DIR SEED STEPS [--fail write|sync N --after exit|close|powerloss]
//
// Lines: "W off len byte", "Z off len", "D off len", "R size", "SC name", "SD name", "C", "V name" before
// an operation; "OK" after it; "A" after a flush that returned (everything before it is durable);
// "ERR message" when an operation failed; "COUNT writes syncs" at the end of a run without a fault.
// With --fail, the N-th write-like operation (write, punch hole, allocate, truncate) or the N-th sync of
// the process is where it goes wrong: `exit` ends the process there (that operation not done),
// `powerloss` also drops a random part of what each file was written since its last sync, as a power
// cut may; `close` makes the operation fail with EIO, and the engine closes the image as after any
// I/O error.
#include "fault_hook.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace q = vmstor::qcow2;

namespace {

constexpr std::uint64_t sector = 512;
constexpr std::uint64_t max_size = 12ull << 20;

void say(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

struct Workload {
    std::string dir;
    std::mt19937_64 rng;
    std::unique_ptr<q::Image> image;
    std::vector<std::string> snapshots;
    unsigned serial = 0;

    std::uint64_t pick(std::uint64_t lo, std::uint64_t hi) {
        return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
    }

    /// A random sector-aligned range inside the image, at most `max_len` long.
    std::pair<std::uint64_t, std::uint64_t> range(std::uint64_t max_len) {
        const std::uint64_t sectors = image->virtual_size() / sector;
        const std::uint64_t start = pick(0, sectors - 1);
        const std::uint64_t len = pick(1, std::min(max_len / sector, sectors - start));
        return {start * sector, len * sector};
    }

    void flush() {
        image->flush();
        say("A");
    }

    void write() {
        auto [off, len] = range(pick(0, 3) == 0 ? 256 * 1024 : 16 * 1024);
        const unsigned value = 2 + (serial++ * 37) % 250;
        say("W " + std::to_string(off) + " " + std::to_string(len) + " " + std::to_string(value));
        const std::vector<std::byte> data(len, std::byte(value));
        image->write(off, data);
    }

    void write_zeroes() {
        auto [off, len] = range(128 * 1024);
        say("Z " + std::to_string(off) + " " + std::to_string(len));
        image->write_zeroes(off, len);
    }

    void discard() {
        // Whole clusters only, so that exactly the given range reads as zeroes afterwards.
        const std::uint64_t cluster = image->cluster_size();
        const std::uint64_t clusters = image->virtual_size() / cluster;
        const std::uint64_t first = pick(0, clusters - 1);
        const std::uint64_t count = pick(1, std::min<std::uint64_t>(4, clusters - first));
        say("D " + std::to_string(first * cluster) + " " + std::to_string(count * cluster));
        image->discard(first * cluster, count * cluster);
    }

    void resize() {
        const std::uint64_t size = image->virtual_size() + pick(1, 8) * 128 * 1024;
        if (size > max_size)
            return write();
        say("R " + std::to_string(size));
        image->resize(size, false);
        flush();
    }

    void snapshot_create() {
        const std::string name = "s" + std::to_string(serial++);
        say("SC " + name);
        q::create_snapshot(*image, name);
        snapshots.push_back(name);
        flush();
    }

    void snapshot_delete() {
        if (snapshots.empty())
            return snapshot_create();
        const std::size_t i = pick(0, snapshots.size() - 1);
        say("SD " + snapshots[i]);
        q::delete_snapshot(*image, snapshots[i]);
        snapshots.erase(snapshots.begin() + static_cast<std::ptrdiff_t>(i));
        flush();
    }

    void commit() {
        say("C");
        q::CommitOptions options;
        options.empty_overlay = pick(0, 1) == 0;
        q::commit_image(*image, options);
        flush();
    }

    void convert() {
        const std::string name = "conv" + std::to_string(serial++) + ".qcow2";
        say("V " + name);
        q::ConvertOptions options;
        options.threads = 1;
        options.compress = pick(0, 2) == 0;
        q::convert_image(*image, dir + "/" + name, options);
    }

    void step() {
        // Operations and their weights out of 100.
        static constexpr std::pair<unsigned, void (Workload::*)()> ops[] = {
            {50, &Workload::write}, {6, &Workload::write_zeroes},    {4, &Workload::discard},
            {15, &Workload::flush}, {7, &Workload::snapshot_create}, {6, &Workload::snapshot_delete},
            {3, &Workload::resize}, {4, &Workload::commit},          {5, &Workload::convert}};
        std::uint64_t r = pick(0, 99);
        for (const auto& [weight, op] : ops) {
            if (r < weight) {
                (this->*op)();
                break;
            }
            r -= weight;
        }
        say("OK");
    }
};

[[noreturn]] void usage() {
    std::fputs("usage: crash_driver DIR SEED STEPS [--fail write|sync N --after exit|close|powerloss]\n",
               stderr);
    std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4 && argc != 9)
        usage();
    const std::string dir = argv[1];
    const std::uint64_t seed = std::strtoull(argv[2], nullptr, 10);
    const unsigned steps = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
    crash::FaultPlan plan;
    if (argc == 9) {
        const std::string kind = argv[5], after = argv[8];
        if (std::string(argv[4]) != "--fail" || std::string(argv[7]) != "--after" ||
            (kind != "write" && kind != "sync") ||
            (after != "exit" && after != "close" && after != "powerloss"))
            usage();
        plan.fail_sync = kind == "sync";
        plan.fail_at = std::strtoull(argv[6], nullptr, 10);
        plan.after = after == "exit"    ? crash::After::Exit
                     : after == "close" ? crash::After::Close
                                        : crash::After::PowerLoss;
    }
    crash::FaultHook hook(plan, seed);
    q::FaultInjection::install(&hook);

    Workload w{dir, std::mt19937_64(seed), nullptr, {}, 0};
    q::OpenOptions open;
    open.writable = true;
    w.image = q::Image::open(dir + "/disk.qcow2", open);
    for (unsigned i = 0; i < steps; ++i) {
        try {
            w.step();
        } catch (const std::exception& e) {
            say(std::string("ERR ") + e.what());
            if (!hook.fired())
                return 1;    // a failure the test did not inject
            w.image.reset(); // the engine closes the image as after any I/O error
            return 0;
        }
    }
    w.image.reset();
    say("COUNT " + std::to_string(hook.writes()) + " " + std::to_string(hook.syncs()));
    return 0;
}
