// snapshot: list, create, apply and delete internal snapshots, as qemu-img snapshot -l/-c/-a/-d.
#include "cli.hpp"
#include "common/error.hpp"

#include <cstdio>
#include <ctime>
#include <fmt/format.h>
#include <getopt.h>
#include <optional>
#include <string>

namespace vmstor::img {

namespace {

std::string vm_clock_string(std::uint64_t nsec) {
    const std::uint64_t msec = nsec / 1000000;
    const std::uint64_t secs = msec / 1000;
    return fmt::format("{:02}:{:02}:{:02}.{:03}", secs / 3600, secs / 60 % 60, secs % 60, msec % 1000);
}

std::string local_date(std::uint32_t seconds) {
    const std::time_t when = static_cast<std::time_t>(seconds);
    std::tm tm{};
    localtime_r(&when, &tm);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    return date;
}

enum class Action { None, List, Create, Apply, Delete };

} // namespace

void print_snapshot_table(const std::vector<qcow2::SnapshotInfo>& snapshots) {
    std::printf("Snapshot list:\n");
    std::printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    for (const auto& s : snapshots) {
        const std::string icount = s.has_icount && s.icount != UINT64_MAX ? std::to_string(s.icount) : "";
        std::printf("%-9s %-16s %8s%20s%13s%11s\n", s.id.c_str(), s.name.c_str(),
                    human_size(s.vm_state_size).c_str(), local_date(s.date_sec).c_str(),
                    vm_clock_string(s.vm_clock_nsec).c_str(), icount.c_str());
    }
}

int cmd_snapshot(int argc, char** argv) {
    std::optional<std::string> format;
    Action action = Action::None;
    std::string name;
    auto set_action = [&](Action a) {
        if (action != Action::None)
            throw Error(ErrorCode::InvalidArgument, "Cannot mix '-l', '-a', '-c', '-d'");
        action = a;
        if (optarg)
            name = optarg;
    };
    qcow2::LockOptions locking;
    static const option long_options[] = {{"force-share", no_argument, nullptr, 'U'},
                                          {nullptr, 0, nullptr, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "a:c:d:f:hlqU", long_options, nullptr)) != -1;) {
        switch (c) {
        case 'U':
            locking.force_share = true;
            break;
        case 'a':
            set_action(Action::Apply);
            break;
        case 'c':
            set_action(Action::Create);
            break;
        case 'd':
            set_action(Action::Delete);
            break;
        case 'l':
            set_action(Action::List);
            break;
        case 'f':
            format = optarg;
            break;
        case 'q':
            break;
        case 'h':
            std::printf("usage: vmstor-img snapshot [-l | -c NAME | -a NAME | -d NAME] [-f fmt] FILE\n");
            return 0;
        default:
            throw Error(ErrorCode::InvalidArgument, "Try 'vmstor-img snapshot -h' for more information");
        }
    }
    if (optind != argc - 1)
        throw Error(ErrorCode::InvalidArgument, "Expecting one image file name");
    const std::string path = argv[optind];
    if (action == Action::None || action == Action::List) {
        auto image = open_image(path, format, false, false, std::nullopt, locking);
        const auto backing_chain = lock_backing_chain(*image, locking); // qemu-img snapshot opens it
        const auto snapshots = qcow2::list_snapshots(*image);
        if (action == Action::List && !snapshots.empty())
            print_snapshot_table(snapshots);
        return 0;
    }
    auto image = open_image(path, format, true, true, std::nullopt, locking);
    try {
        switch (action) {
        case Action::Create:
            qcow2::create_snapshot(*image, name);
            break;
        case Action::Apply:
            qcow2::apply_snapshot(*image, name);
            break;
        default:
            qcow2::delete_snapshot(*image, name);
            break;
        }
    } catch (const Error& e) {
        const char* verb = action == Action::Create ? "create" : action == Action::Apply ? "apply" : "delete";
        throw Error(e.code(), fmt::format("Could not {} snapshot '{}': {}", verb, name, e.what()));
    }
    return 0;
}

} // namespace vmstor::img
