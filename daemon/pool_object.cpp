#include "pool_object.hpp"

#include "authorizer.hpp"
#include "caller.hpp"
#include "error_boundary.hpp"
#include "job_registry.hpp"
#include "object_paths.hpp"
#include "options.hpp"
#include "pool_definition.hpp"
#include "storage/image_jobs.hpp"
#include "volume_jobs.hpp"

#include <fmt/format.h>

namespace vmstor::daemon {

namespace {

constexpr const char* pool_interface = "org.vmstor.Storage1.Pool";

std::vector<std::string> changed_properties(const storage::PoolState& a, const storage::PoolState& b) {
    std::vector<std::string> names;
    auto note = [&](bool differs, const char* name) {
        if (differs)
            names.emplace_back(name);
    };
    note(a.state != b.state, "State");
    note(a.active != b.active, "Active");
    note(a.persistent != b.persistent, "Persistent");
    note(a.autostart != b.autostart, "Autostart");
    note(a.capacity != b.capacity, "Capacity");
    note(a.allocation != b.allocation, "Allocation");
    note(a.available != b.available, "Available");
    note(a.target_path != b.target_path, "TargetPath");
    note(!(a.source == b.source), "Source");
    note(a.overcommit != b.overcommit, "Overcommit");
    return names;
}

std::vector<OptionSpec> create_option_keys() {
    return JobOptions::keys_with({{"format", "s"},
                                  {"cluster_size", "t"},
                                  {"compat", "s"},
                                  {"lazy_refcounts", "b"},
                                  {"preallocation", "s"},
                                  {"extended_l2", "b"},
                                  {"compression_type", "s"},
                                  {"backing", "o|s"},
                                  {"backing_format", "s"},
                                  {"encryption.secret", "s"},
                                  {"mode", "u"},
                                  {"owner", "u"},
                                  {"group", "u"}});
}

std::vector<OptionSpec> import_option_keys() {
    return JobOptions::keys_with({{"format", "s"}, {"cluster_size", "t"}, {"length", "t"}, {"sparse", "b"}});
}

} // namespace

PoolObject::PoolObject(sdbus::IConnection& bus, const RawBus& raw_bus, storage::StorageService& service,
                       JobRegistry& jobs, Authorizer& authorizer, const storage::PoolState& state)
    : AdaptorInterfaces(bus, pool_path(state.name)), service_(service), jobs_(jobs), authorizer_(authorizer),
      name_(state.name), state_(state),
      property_set_(
          raw_bus, pool_path(state.name), std::string(pool_interface),
          {{"Autostart", "b"}, {"Thresholds", "a{sd}"}},
          [this](const std::string& property, const sdbus::Variant& value, const sdbus::MethodCall& call,
                 sdbus::Result<>&& reply) { set_property(property, value, call, std::move(reply)); }) {
    registerAdaptor();
    emitInterfacesAddedSignal();
}

PoolObject::~PoolObject() {
    without_throwing("InterfacesRemoved", [this] { emitInterfacesRemovedSignal(); });
    unregisterAdaptor();
}

void PoolObject::changed(const storage::PoolState& before, const storage::PoolState& after) {
    state_ = after;
    auto names = changed_properties(before, after);
    if (!names.empty())
        emitPropertiesChangedSignal(pool_interface, names);
}

void PoolObject::threshold_crossed(storage::FillLevel level, double used) {
    emitThresholdCrossed(std::string(storage::fill_level_name(level)), used);
}

void PoolObject::refuse_if_jobs_use(const std::string& what) const {
    std::vector<std::string> files;
    for (const auto& [name, volume] : service_.volumes(name_))
        files.push_back(volume.path);
    // A pool without a directory (disk, logical...) names devices beneath /dev: its volumes say it all.
    std::string directory = service_.writes_files(name_) ? state_.target_path : "";
    jobs_.refuse_if_pool_used(name_, files, directory, what);
}

void PoolObject::Start(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "Pool.Start options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                              Action::ManagePools, {{"pool", name_}},
                              [this](const Caller&) { service_.start_pool(name_); });
    });
}

void PoolObject::Stop(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "Pool.Stop options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                              Action::ManagePools, {{"pool", name_}}, [this](const Caller&) {
                                  refuse_if_jobs_use("stop");
                                  service_.stop_pool(name_);
                              });
    });
}

void PoolObject::Build(sdbus::Result<sdbus::ObjectPath>&& result,
                       std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "Pool.Build options", JobOptions::keys_with({}));
        JobOptions job_options = JobOptions::from(opts);
        when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result), Action::ManagePools,
                        {{"pool", name_}},
                        [this, job_options](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                            JobSpec spec = build_pool_job(service_, name_);
                            spec.started_by_uid = caller.uid;
                            jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
                        });
    });
}

void PoolObject::Refresh(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "Pool.Refresh options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                              Action::ManagePools, {{"pool", name_}},
                              [this](const Caller&) { service_.refresh_pool(name_); });
    });
}

void PoolObject::Undefine(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "Pool.Undefine options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                              Action::ManagePools, {{"pool", name_}}, [this](const Caller&) {
                                  refuse_if_jobs_use("undefine");
                                  // May destroy this object: touch no member afterwards.
                                  service_.undefine_pool(name_);
                              });
    });
}

void PoolObject::Delete(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "Pool.Delete options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                              Action::ManagePools, {{"pool", name_}}, [this](const Caller&) {
                                  refuse_if_jobs_use("delete");
                                  service_.delete_pool(name_);
                              });
    });
}

void PoolObject::CreateVolume(sdbus::Result<sdbus::ObjectPath>&& result, std::string name, uint64_t capacity,
                              std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "CreateVolume options", create_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        Caller caller = Caller::of(getObject());
        const std::map<std::string, std::string> target{{"pool", name_}, {"volume", name}};
        std::vector<Permission> needed{{Action::ManageVolumes, target}};
        // A file given to another account or group is a pool manager's decision.
        auto owner = opts.u32("owner");
        auto group = opts.u32("group");
        if ((owner && *owner != caller.uid) || (group && !caller.in_group(*group)))
            needed.push_back({Action::ManagePools, target,
                              fmt::format("cannot create volume '{}' in pool '{}' for another owner or group",
                                          name, name_)});
        // So is a backing file outside every pool. A missing one is reported after authorization.
        std::optional<std::string> backing_outside;
        if (opts.signature("backing") == "s") {
            try {
                backing_outside = backing_outside_pools(service_, *opts.text("backing"), state().target_path);
            } catch (const vmstor::Error&) {
            }
            if (backing_outside)
                needed.push_back({Action::ManagePools, target, *backing_outside});
        }
        when_authorized(
            authorizer_, caller, alive_, std::move(result), std::move(needed),
            [this, name, capacity, options, job_options, granted_outside = backing_outside.has_value()](
                const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                Options opts(options, "CreateVolume options", create_option_keys());
                if (opts.has("encryption.secret"))
                    throw vmstor::Error(
                        ErrorCode::NotSupported,
                        fmt::format(
                            "cannot create volume '{}' in pool '{}': LUKS encryption is not supported "
                            "by this vmstord yet",
                            name, name_));
                storage::CreateVolumeRequest request;
                request.pool = name_;
                request.name = name;
                request.capacity = capacity;
                // Partitions and logical volumes hold raw data; files are qcow2 unless asked.
                request.format = opts.text("format").value_or(service_.writes_files(name_) ? "qcow2" : "raw");
                request.preallocation = opts.text("preallocation").value_or("off");
                request.compat = opts.text("compat").value_or("");
                request.lazy_refcounts = opts.flag("lazy_refcounts", false);
                request.cluster_size = opts.u64("cluster_size");
                request.extended_l2 = opts.flag("extended_l2", false);
                request.compression_type = opts.text("compression_type").value_or("");
                if (auto backing = opts.text("backing")) {
                    if (opts.signature("backing") == "o") {
                        auto [pool, volume] = volume_names_from_path(*backing);
                        request.backing_path = service_.volume(pool, volume).path;
                    } else {
                        request.backing_path = *backing;
                    }
                }
                request.backing_format = opts.text("backing_format").value_or("");
                request.permissions.mode = opts.u32("mode");
                request.permissions.owner = opts.u32("owner");
                request.permissions.group = opts.u32("group");
                service_.check_volume_request(request);
                if (opts.signature("backing") == "s")
                    if (auto why = backing_outside_pools(service_, request.backing_path, state().target_path);
                        why && !granted_outside)
                        throw vmstor::Error(ErrorCode::NotAuthorized, *why); // moved out since authorized

                if (!service_.writes_files(name_)) {
                    const storage::VolumeState& created = service_.create_volume(request);
                    reply.returnResults(sdbus::ObjectPath(volume_path(created.pool, created.name)));
                    return;
                }
                std::shared_ptr<storage::NewVolumeFile> file =
                    service_.new_volume_file(name_, name, "volume-create", request.format);
                // A job making a volume of that name holds the name until it ends.
                jobs_.claim_files({file->path()}, "create volume");
                if (request.preallocation == "off") {
                    storage::create_image_file(*file, request);
                    service_.volume_file_changed(name_, name);
                    reply.returnResults(sdbus::ObjectPath(volume_path(name_, name)));
                    return;
                }
                // Preallocation writes up to the whole capacity: a job, so that the call does not hang.
                JobSpec spec;
                spec.operation = "volume-create";
                spec.objects = {sdbus::ObjectPath(pool_path(name_))};
                spec.started_by_uid = caller.uid;
                spec.cancelable = false;
                spec.new_files = {file->path()};
                spec.work = [file, request](storage::JobContext& context) {
                    context.set_total(request.capacity);
                    storage::create_image_file(*file, request);
                    context.set_done(request.capacity);
                };
                spec.finished = [&service = service_, pool = name_, name](bool) {
                    service.volume_file_changed(pool, name);
                };
                jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
            });
    });
}

void PoolObject::ImportVolume(sdbus::Result<sdbus::ObjectPath>&& result, std::string name, sdbus::UnixFd fd,
                              std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "Pool.ImportVolume options", import_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                        Action::ManageVolumes, {{"pool", name_}, {"volume", name}},
                        [this, name, fd, options, job_options](const Caller& caller,
                                                               sdbus::Result<sdbus::ObjectPath>&& reply) {
                            Options opts(options, "Pool.ImportVolume options", import_option_keys());
                            JobSpec spec = import_volume_job(service_, name_, name, fd, opts);
                            spec.started_by_uid = caller.uid;
                            jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
                        });
    });
}

void PoolObject::CloneVolume(sdbus::Result<sdbus::ObjectPath>&& result, sdbus::ObjectPath source,
                             std::string name, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "Pool.CloneVolume options", copy_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        auto [source_pool, source_volume] = volume_names_from_path(source);
        const storage::VolumeState& original = service_.volume(source_pool, source_volume);
        // On what it reads and on what it creates: a rule that limits a user to one pool holds.
        Action reading =
            service_.backing_outside_pools(original) ? Action::ManagePools : Action::ManageVolumes;
        when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                        {{Action::ManageVolumes, {{"pool", name_}, {"volume", name}}},
                         {reading, {{"pool", source_pool}, {"volume", source_volume}}}},
                        [this, source_pool, source_volume, name, options,
                         job_options](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                            Options opts(options, "Pool.CloneVolume options", copy_option_keys());
                            const storage::VolumeState& original =
                                service_.volume(source_pool, source_volume);
                            JobSpec spec =
                                copy_volume_job(service_, original, name_, name, opts, "pool-clone-volume");
                            spec.started_by_uid = caller.uid;
                            jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
                        });
    });
}

void PoolObject::GetXML(sdbus::Result<std::string>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options(options, "Pool.GetXML options", {});
        reply_when_authorized(authorizer_, Caller::of(getObject()).without_interaction(), alive_,
                              std::move(result), Action::Read, {{"pool", name_}},
                              [this](const Caller&) { return service_.pool_xml(name_); });
    });
}

// The vtable's setters, reached only by a Set that property_set_ did not take over (none today): they
// authorize on the bus thread.
void PoolObject::Autostart(const bool& value) {
    guarded([&] {
        authorizer_.require(getObject(), Action::ManagePools, {{"pool", name_}});
        set_autostart(value);
    });
}

std::map<std::string, sdbus::Variant> PoolObject::Source() {
    return source_to_map(state().source);
}

std::map<std::string, double> PoolObject::Thresholds() {
    const storage::Thresholds& thresholds = service_.thresholds(name_);
    return {{"warning", thresholds.warning}, {"critical", thresholds.critical}};
}

void PoolObject::Thresholds(const std::map<std::string, double>& value) {
    guarded([&] {
        authorizer_.require(getObject(), Action::ManagePools, {{"pool", name_}});
        set_thresholds(value);
    });
}

void PoolObject::set_property(const std::string& property, const sdbus::Variant& value,
                              const sdbus::MethodCall& call, sdbus::Result<>&& reply) {
    if (property == "Thresholds") // its keys are checked before polkit is asked, as every argument is
        check_threshold_keys(value.get<std::map<std::string, double>>());
    reply_when_authorized(authorizer_, Caller::of(call).without_interaction(), alive_, std::move(reply),
                          Action::ManagePools, {{"pool", name_}}, [this, property, value](const Caller&) {
                              if (property == "Autostart")
                                  set_autostart(value.get<bool>());
                              else
                                  set_thresholds(value.get<std::map<std::string, double>>());
                          });
}

void PoolObject::set_autostart(bool value) {
    service_.set_autostart(name_, value);
}

void PoolObject::check_threshold_keys(const std::map<std::string, double>& value) const {
    for (const auto& [key, level] : value)
        if (key != "warning" && key != "critical")
            throw vmstor::Error(
                ErrorCode::InvalidArgument,
                fmt::format("Thresholds of pool '{}': unknown key '{}' (known: warning, critical)", name_,
                            key));
}

void PoolObject::set_thresholds(const std::map<std::string, double>& value) {
    check_threshold_keys(value);
    storage::Thresholds thresholds = service_.thresholds(name_);
    for (const auto& [key, level] : value)
        (key == "warning" ? thresholds.warning : thresholds.critical) = level;
    if (thresholds == service_.thresholds(name_))
        return;
    service_.set_thresholds(name_, thresholds);
    emitPropertiesChangedSignal(pool_interface, {"Thresholds"});
}

} // namespace vmstor::daemon
