#include "job_commands.hpp"

#include <memory>
#include <pwd.h>

#include "bus.hpp"
#include "common/size.hpp"
#include "dbus_json.hpp"
#include "job_follower.hpp"
#include "requests.hpp"

namespace vmstor::client {

namespace {

std::string user_name(std::uint32_t uid) {
    if (const passwd* entry = getpwuid(uid))
        return entry->pw_name;
    return std::to_string(uid);
}

std::string job_missing(const std::string& path) {
    return "job " + path + " does not exist (a finished job is kept for 60 s only)";
}

void add_job_list(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("job-list", "List the running and recently finished jobs");
    command->callback([&context] {
        auto jobs = nlohmann::json::array();
        for (const auto& path : ManagerProxy(context.bus()).ListJobs({})) {
            try {
                auto job = properties_to_json(PropertiesProxy(context.bus(), path).GetAll(job_interface));
                job["ObjectPath"] = std::string(path);
                jobs.push_back(std::move(job));
            } catch (const sdbus::Error& error) {
                // A job that ended its 60 s between ListJobs and GetAll is simply gone.
                if (error.getName() != "org.freedesktop.DBus.Error.UnknownObject")
                    throw;
            }
        }
        context.print(jobs, [&] { return render_table(job_table(jobs, user_name)); });
    });
}

void add_job_cancel(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("job-cancel", "Ask the daemon to cancel a job");
    auto job = std::make_shared<std::string>();
    command->add_option("JOB", *job, "Job number or object path")->required();
    command->callback([&context, job] {
        auto path = job_object_path(*job);
        translating_unknown_object(job_missing(path), [&] { JobProxy(context.bus(), path).Cancel({}); });
    });
}

void add_job_wait(CLI::App& app, CommandContext& context) {
    auto* command = app.add_subcommand("job-wait", "Wait for a job to end, showing its progress");
    auto job = std::make_shared<std::string>();
    command->add_option("JOB", *job, "Job number or object path")->required();
    command->callback([&context, job] {
        auto path = job_object_path(*job);
        // Ctrl-C only stops waiting here: the job may be someone else's.
        translating_unknown_object(job_missing(path),
                                   [&] { follow_job(context.bus(), path, OnInterrupt::StopWaiting); });
    });
}

} // namespace

PropertyMap JobFlags::with_rate_limit(PropertyMap options) const {
    if (!rate_limit.empty())
        options["rate_limit"] = sdbus::Variant(parse_size(rate_limit));
    return options;
}

void add_job_flags(CLI::App& command, JobFlags& flags) {
    command.add_flag("--no-wait", flags.no_wait, "Print the job's object path and return at once");
    command.add_option("--rate-limit", flags.rate_limit, "At most this many bytes per second, e.g. 10M")
        ->check(size_validator());
}

bool finish_job(CommandContext& context, const std::string& job, bool no_wait) {
    if (no_wait) {
        context.print_created(job);
        return false;
    }
    follow_job(context.bus(), job);
    return true;
}

bool run_volume_job(CommandContext& context, const VolumeName& name, bool no_wait,
                    const std::function<sdbus::ObjectPath(VolumeProxy&)>& start) {
    std::string job;
    translating_unknown_object(volume_missing(name), [&] {
        VolumeProxy volume(context.bus(), volume_object_path(name.pool, name.volume));
        job = start(volume);
    });
    return finish_job(context, job, no_wait);
}

void add_job_commands(CLI::App& app, CommandContext& context) {
    add_job_list(app, context);
    add_job_cancel(app, context);
    add_job_wait(app, context);
}

} // namespace vmstor::client
