// The fault injection test's driver: runs one vmstor-img command in-process with the engine's
// FaultInjection hook installed, failing the N-th file operation of a kind with ENOSPC or EIO, as
// QEMU's iotest 026 does with blkdebug.
//
//   fault_img [--fail-op write|sync|truncate|allocate|any --fail-at N --errno ENOSPC|EIO] -- COMMAND ARGS
//
// Without --fail-at it only counts. Either way its last line on stderr is
// "fault_img: write=W sync=S truncate=T allocate=A any=N injected=OP:N|none": the operations the command
// reached (allocate counts fallocate calls: allocation and hole punching), and the one that failed.
#include "dispatch.hpp"
#include "qcow2/file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace q = vmstor::qcow2;

namespace {

enum Kind { Write, Sync, Truncate, Allocate, Any, Kinds };
constexpr const char* kind_names[Kinds] = {"write", "sync", "truncate", "allocate", "any"};

class Injector final : public q::FaultInjection {
  public:
    Injector(int kind, std::uint64_t fail_at, int error) : kind_(kind), fail_at_(fail_at), error_(error) {}

    int before(Op op, const std::string&, std::uint64_t, std::uint64_t) override {
        const int kind = op == Op::Write      ? Write
                         : op == Op::Sync     ? Sync
                         : op == Op::Truncate ? Truncate
                                              : Allocate; // Allocate and PunchHole: both fallocate
        ++counts_[kind];
        ++counts_[Any];
        if (fail_at_ != 0 && !fired_ && counts_[kind_] == fail_at_ && (kind_ == Any || kind_ == kind)) {
            fired_ = true;
            return error_;
        }
        return 0;
    }

    std::string summary() const {
        std::string s = "fault_img:";
        for (int k = 0; k < Kinds; ++k)
            s += " " + std::string(kind_names[k]) + "=" + std::to_string(counts_[k]);
        s += fired_ ? " injected=" + std::string(kind_names[kind_]) + ":" + std::to_string(fail_at_)
                    : std::string(" injected=none");
        return s;
    }

  private:
    int kind_;
    std::uint64_t fail_at_;
    int error_;
    bool fired_ = false;
    std::uint64_t counts_[Kinds] = {};
};

[[noreturn]] void usage() {
    std::fputs("usage: fault_img [--fail-op write|sync|truncate|allocate|any --fail-at N --errno ENOSPC|EIO] "
               "-- COMMAND ARGS\n",
               stderr);
    std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
    int kind = Any, error = ENOSPC;
    std::uint64_t fail_at = 0;
    int i = 1;
    for (; i < argc && std::string(argv[i]) != "--"; i += 2) {
        if (i + 1 >= argc)
            usage();
        const std::string option = argv[i], value = argv[i + 1];
        if (option == "--fail-op") {
            kind = Kinds;
            for (int k = 0; k < Kinds; ++k)
                if (value == kind_names[k])
                    kind = k;
            if (kind == Kinds)
                usage();
        } else if (option == "--fail-at") {
            fail_at = std::strtoull(value.c_str(), nullptr, 10);
        } else if (option == "--errno") {
            if (value != "ENOSPC" && value != "EIO")
                usage();
            error = value == "EIO" ? EIO : ENOSPC;
        } else {
            usage();
        }
    }
    if (i >= argc - 1)
        usage();
    Injector hook(kind, fail_at, error);
    q::FaultInjection::install(&hook);
    // argv[i] is "--": it stands where the program name would be.
    std::vector<char*> args(argv + i, argv + argc);
    args.push_back(nullptr);
    const int rc = vmstor::img::run_command(static_cast<int>(args.size() - 1), args.data());
    q::FaultInjection::install(nullptr);
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", hook.summary().c_str());
    return rc;
}
