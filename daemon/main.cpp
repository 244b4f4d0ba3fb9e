// vmstord: serves libvirt's storage pools and volumes, and vmstor's own image operations, on D-Bus.
#include "main_loop.hpp"
#include "object_paths.hpp"
#include "object_tree.hpp"
#include "storage/service.hpp"
#include "storage/worker_pool.hpp"
#include "virt/errors.hpp"
#include "virt/event_loop.hpp"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <malloc.h>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace {

void set_up_logging(bool verbose) {
    // Under systemd, stderr is the journal already; the journal sink keeps levels as priorities.
    if (std::getenv("JOURNAL_STREAM"))
        spdlog::set_default_logger(std::make_shared<spdlog::logger>(
            "vmstord", std::make_shared<spdlog::sinks::systemd_sink_mt>("vmstord")));
    else
        spdlog::set_default_logger(spdlog::stderr_color_mt("vmstord"));
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
}

/// @brief The settings store in `directory`, made if missing; one that keeps nothing when it cannot be.
vmstor::storage::SettingsStore settings_store(const std::string& directory) {
    std::error_code error;
    if (!directory.empty() && !std::filesystem::is_directory(directory) &&
        !std::filesystem::create_directories(directory, error)) {
        spdlog::warn("settings will not outlive this run: cannot create '{}': {}", directory,
                     error.message());
        return vmstor::storage::SettingsStore("");
    }
    if (!directory.empty() && ::access(directory.c_str(), W_OK) != 0) {
        spdlog::warn("settings will not outlive this run: '{}' is not writable", directory);
        return vmstor::storage::SettingsStore("");
    }
    return vmstor::storage::SettingsStore(directory);
}

// Returns freed heap to the system now and then: after a large sync (thousands of XML descriptions read
// and dropped) glibc would otherwise keep the pages, and resident memory would stay at its peak.
void trim_heap_periodically(vmstor::daemon::MainLoop& loop) {
    loop.after(std::chrono::seconds(10), [&loop] {
        malloc_trim(0);
        trim_heap_periodically(loop);
    });
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vmstord: storage pools, volumes and images for KVM hosts, on D-Bus"};
    bool session = false;
    bool verbose = false;
    std::string uri = "qemu:///system";
    std::string state_dir = "/var/lib/vmstor";
    app.add_flag("--session", session, "Serve on the session bus instead of the system bus");
    app.add_option("--connect,-c", uri, "libvirt URI to manage")->capture_default_str();
    app.add_option("--state-dir", state_dir,
                   "Where settings that outlive a restart are kept (\"\" for nowhere)")
        ->capture_default_str();
    app.add_flag("--verbose,-v", verbose, "Log debug messages");
    app.set_version_flag("--version", VMSTOR_VERSION);
    CLI11_PARSE(app, argc, argv);

    // As libvirt asks of its users: a peer gone (libvirtd stopped, a download's reader closed) is then an
    // EPIPE error to handle, not a signal that kills the daemon.
    std::signal(SIGPIPE, SIG_IGN);
    set_up_logging(verbose);
    // Few arenas: the daemon's threads allocate little, and every arena keeps its own freed pages.
    mallopt(M_ARENA_MAX, 2);
    try {
        auto bus = session ? sdbus::createSessionBusConnection() : sdbus::createSystemBusConnection();
        vmstor::daemon::MainLoop loop(*bus); // blocks SIGTERM/SIGINT before any other thread starts
        vmstor::virt::route_errors_to_log();
        vmstor::virt::EventLoop libvirt_events;

        // Declared before the tree, so that jobs are cancelled (tree) before the workers are joined.
        vmstor::storage::WorkerPool workers;
        vmstor::daemon::ObjectTree tree(*bus, loop, workers);
        vmstor::storage::StorageService service(uri, loop, tree, settings_store(state_dir));
        tree.attach(service);
        service.start();

        trim_heap_periodically(loop);
        bus->requestName(vmstor::daemon::bus_name);
        spdlog::info("vmstord {} serving {} on the {} bus", VMSTOR_VERSION, vmstor::daemon::bus_name,
                     session ? "session" : "system");
        sd_notify(0, "READY=1");
        loop.run();
        sd_notify(0, "STOPPING=1");
        bus->releaseName(vmstor::daemon::bus_name);
    } catch (const sdbus::Error& e) {
        spdlog::critical("D-Bus: {}: {}", e.getName(), e.getMessage());
        return EXIT_FAILURE;
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return EXIT_FAILURE;
    }
    spdlog::info("stopped");
    return EXIT_SUCCESS;
}
