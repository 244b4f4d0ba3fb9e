#include "volume_object.hpp"

#include "authorizer.hpp"
#include "caller.hpp"
#include "common/names.hpp"
#include "error_boundary.hpp"
#include "job_registry.hpp"
#include "object_paths.hpp"
#include "options.hpp"
#include "reply_workers.hpp"
#include "snapshot_object.hpp"
#include "storage/image_jobs.hpp"
#include "storage/image_lock.hpp"
#include "storage/snapshots.hpp"
#include "volume_bus.hpp"
#include "volume_jobs.hpp"

#include <fmt/ranges.h>

#include <fmt/format.h>
#include <optional>

namespace vmstor::daemon {

namespace {

std::vector<std::string> changed_properties(const storage::VolumeState& a, const storage::VolumeState& b) {
    std::vector<std::string> names;
    auto note = [&](bool differs, const char* name) {
        if (differs)
            names.emplace_back(name);
    };
    note(a.format != b.format, "Format");
    note(a.capacity != b.capacity, "Capacity");
    note(a.allocation != b.allocation, "Allocation");
    note(a.physical != b.physical, "Physical");
    note(a.backing_chain != b.backing_chain, "BackingChain");
    note(a.encrypted != b.encrypted, "Encrypted");
    note(a.used_by != b.used_by, "UsedBy");
    note(a.locked != b.locked, "Locked");
    return names;
}

constexpr std::size_t max_check_messages = 1000;

/// @brief Volume.Check's answer: the counts and messages of `qemu-img check --output=json`, at most
/// max_check_messages messages (a badly broken image can have one per cluster).
std::map<std::string, sdbus::Variant> check_answer(const storage::CheckReport& report,
                                                   const std::string& path, const std::string& format) {
    std::map<std::string, sdbus::Variant> out;
    for (const auto& [key, value] : report.counts)
        out[key] = value;
    out["filename"] = path;
    out["format"] = format;
    std::vector<std::string> messages(
        report.messages.begin(), report.messages.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                               report.messages.size(), max_check_messages)));
    if (report.messages.size() > max_check_messages)
        messages.push_back(
            fmt::format("... and {} more messages", report.messages.size() - max_check_messages));
    out["messages"] = messages;
    return out;
}

std::vector<OptionSpec> wipe_option_keys() {
    return JobOptions::keys_with({{"algorithm", "s"}});
}

std::vector<OptionSpec> rebase_option_keys() {
    return JobOptions::keys_with({{"backing_format", "s"}, {"unsafe", "b"}});
}

} // namespace

VolumeObject::VolumeObject(VolumeBus& bus, storage::StorageService& service, JobRegistry& jobs,
                           Authorizer& authorizer, ReplyWorkers& replies, ScheduleRunner& schedules,
                           const storage::VolumeState& state)
    : bus_(bus), service_(service), jobs_(jobs), authorizer_(authorizer), replies_(replies),
      schedules_(schedules), pool_(state.pool), name_(state.name), state_(state) {
    bus_.add(volume_path(pool_, name_), *this);
}

VolumeObject::~VolumeObject() {
    bus_.remove(volume_path(pool_, name_), *this);
}

void VolumeObject::changed(const storage::VolumeState& before, const storage::VolumeState& after) {
    state_ = after;
    auto names = changed_properties(before, after);
    if (!names.empty())
        bus_.properties_changed(volume_path(pool_, name_), names);
}

void VolumeObject::not_yet(std::string_view member) const {
    throw vmstor::Error(ErrorCode::NotSupported,
                        fmt::format("Volume.{} on volume '{}' in pool '{}' is not supported "
                                    "by this vmstord yet",
                                    member, name_, pool_));
}

Permission VolumeObject::opening(Action usual) const {
    return {service_.backing_outside_pools(state_) ? Action::ManagePools : usual, details()};
}

void VolumeObject::refuse_if_busy(std::string_view what, bool backing_users) const {
    // A job of vmstord's own first: QEMU's lock check does not see the locks this process holds.
    jobs_.claim_files({state_.path}, fmt::format("{} volume '{}' of pool '{}' at", what, name_, pool_));
    if (storage::image_locked_for_writing(state_.path))
        throw vmstor::Error(ErrorCode::Busy,
                            fmt::format("cannot {} volume '{}' in pool '{}': another process (QEMU) "
                                        "has it open for writing",
                                        what, name_, pool_));
    if (backing_users)
        service_.refuse_if_backing_others(state_, what);
}

void VolumeObject::Delete(const Caller& caller, sdbus::Result<>&& result, Dict options) {
    guarded([&] {
        Options(options, "Volume.Delete options", {});
        reply_when_authorized(authorizer_, caller, alive_, std::move(result), Action::ManageVolumes,
                              details(), [this](const Caller&) {
                                  refuse_if_busy("delete", true);
                                  // May destroy this object: touch no member afterwards.
                                  service_.delete_volume(pool_, name_);
                              });
    });
}

void VolumeObject::Resize(const Caller& caller, sdbus::Result<>&& result, uint64_t capacity, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Resize options", {{"shrink", "b"}});
        bool shrink = opts.flag("shrink", false);
        reply_when_authorized(authorizer_, caller, alive_, std::move(result), Action::ManageVolumes,
                              details(), [this, capacity, shrink](const Caller&) {
                                  refuse_if_busy("resize", false);
                                  service_.resize_volume(pool_, name_, capacity, shrink);
                              });
    });
}

void VolumeObject::Wipe(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Wipe options", wipe_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        when_authorized(
            authorizer_, caller, alive_, std::move(result), {opening(Action::ManageVolumes)},
            [this, options, job_options](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                JobSpec spec = wipe_volume_job(service_, state_,
                                               Options(options, "Volume.Wipe options", wipe_option_keys()));
                spec.started_by_uid = caller.uid;
                jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
            });
    });
}

void VolumeObject::Download(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, sdbus::UnixFd fd,
                            Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Download options", stream_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        when_authorized(
            authorizer_, caller, alive_, std::move(result), {opening(Action::ManageVolumes)},
            [this, fd, options, job_options](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                JobSpec spec = download_volume_job(
                    service_, state_, fd, Options(options, "Volume.Download options", stream_option_keys()));
                spec.started_by_uid = caller.uid;
                jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
            });
    });
}

void VolumeObject::Upload(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, sdbus::UnixFd fd,
                          Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Upload options", stream_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        when_authorized(
            authorizer_, caller, alive_, std::move(result), {opening(Action::ManageVolumes)},
            [this, fd, options, job_options](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                JobSpec spec = upload_volume_job(
                    service_, state_, fd, Options(options, "Volume.Upload options", stream_option_keys()));
                spec.started_by_uid = caller.uid;
                jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
            });
    });
}

void VolumeObject::Check(const Caller& caller, sdbus::Result<Dict>&& result, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Check options", {{"repair", "s"}});
        std::string repair = opts.text("repair").value_or("");
        if (!repair.empty() && repair != "leaks" && repair != "all")
            throw vmstor::Error(ErrorCode::InvalidArgument,
                                fmt::format("Volume.Check: repair '{}' is not one of leaks, all", repair));
        when_authorized(authorizer_, caller, alive_, std::move(result),
                        {opening(repair.empty() ? Action::Read : Action::ManageVolumes)},
                        [this, repair](const Caller&, sdbus::Result<Dict>&& reply) {
                            check_volume_file(service_, state_);
                            storage::RepairLevel level = repair == "all"     ? storage::RepairLevel::All
                                                         : repair == "leaks" ? storage::RepairLevel::Leaks
                                                                             : storage::RepairLevel::None;
                            auto check = [image = service_.image_of(state_), level] {
                                return storage::check_image_file(image, level);
                            };
                            auto answer = [path = state_.path,
                                           format = state_.format](storage::CheckReport report) {
                                return check_answer(report, path, format);
                            };
                            if (repair.empty()) {
                                replies_.reply(std::move(reply), check, answer);
                                return;
                            }
                            // A repair writes: no job may use the file meanwhile (Busy), nor QEMU open it for
                            // writing.
                            refuse_if_busy("repair", false);
                            auto shared = std::make_shared<sdbus::Result<Dict>>(std::move(reply));
                            auto report = std::make_shared<storage::CheckReport>();
                            try {
                                jobs_.run_briefly(
                                    state_.path,
                                    [check, report, path = state_.path] {
                                        storage::ImageWriteLock lock(path);
                                        *report = check();
                                    },
                                    [shared, report, answer](std::exception_ptr error) {
                                        if (error)
                                            shared->returnError(to_dbus_error(error));
                                        else
                                            shared->returnResults(answer(std::move(*report)));
                                    });
                            } catch (...) {
                                shared->returnError(to_dbus_error(std::current_exception()));
                            }
                        });
    });
}

void VolumeObject::Info(const Caller& caller, sdbus::Result<std::string>&& result, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Info options", {{"backing-chain", "b"}});
        bool chain = opts.flag("backing-chain", false);
        when_authorized(
            authorizer_, caller.without_interaction(), alive_, std::move(result), {opening(Action::Read)},
            [this, chain](const Caller&, sdbus::Result<std::string>&& reply) {
                check_volume_file(service_, state_);
                if (std::string format = service_.data_format(state_); format != "raw" && format != "qcow2")
                    not_yet("Info of a volume that is neither raw nor qcow2");
                replies_.reply(std::move(reply), [image = service_.image_of(state_), chain] {
                    return storage::image_info_json(image, chain);
                });
            });
    });
}

void VolumeObject::Convert(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result,
                           sdbus::ObjectPath pool, std::string name, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Convert options", copy_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        // On what it reads and on what it creates: a rule that limits a user to one pool holds.
        when_authorized(authorizer_, caller, alive_, std::move(result),
                        {opening(Action::ManageVolumes),
                         {Action::ManageVolumes, {{"pool", pool_name_from_path(pool)}, {"volume", name}}}},
                        [this, pool, name, options, job_options](const Caller& caller,
                                                                 sdbus::Result<sdbus::ObjectPath>&& reply) {
                            JobSpec spec = copy_volume_job(
                                service_, state_, pool_name_from_path(pool), name,
                                Options(options, "Volume.Convert options", copy_option_keys()),
                                "volume-convert");
                            spec.started_by_uid = caller.uid;
                            jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
                        });
    });
}

void VolumeObject::CreateSnapshot(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result,
                                  std::string name, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.CreateSnapshot options", {});
        validate_name("snapshot", name);
        when_authorized(
            authorizer_, caller, alive_, std::move(result),
            {{service_.backing_outside_pools(state_) ? Action::ManagePools : Action::ManageSnapshots,
              {{"pool", pool_}, {"volume", name_}, {"snapshot", name}}}},
            [this, name](const Caller&, sdbus::Result<sdbus::ObjectPath>&& result) {
                if (state_.format != "qcow2")
                    throw vmstor::Error(
                        ErrorCode::NotSupported,
                        fmt::format("cannot snapshot volume '{}' in pool '{}': internal snapshots need "
                                    "the qcow2 format, not '{}' (CreateOverlay works for any format)",
                                    name_, pool_, state_.format));
                for (const storage::SnapshotState& snapshot : state_.snapshots)
                    if (snapshot.name == name)
                        throw vmstor::Error(
                            ErrorCode::AlreadyExists,
                            fmt::format("volume '{}' in pool '{}' already has a snapshot named '{}'", name_,
                                        pool_, name));
                check_volume_file(service_, state_);
                refuse_if_busy("snapshot", false);
                spdlog::info("creating snapshot '{}' of volume '{}' of pool '{}'", name, name_, pool_);
                auto reply = std::make_shared<sdbus::Result<sdbus::ObjectPath>>(std::move(result));
                // Replied through `reply` from here on: a refusal to start is its error too.
                try {
                    jobs_.run_briefly(
                        state_.path,
                        [image = service_.image_of(state_), name] {
                            storage::create_snapshot_in(image, name);
                        },
                        [reply, &service = service_, pool = pool_, volume = name_,
                         name](std::exception_ptr error) {
                            service.volume_file_changed(pool, volume);
                            if (error) {
                                reply->returnError(to_dbus_error(error));
                                return;
                            }
                            try {
                                const storage::VolumeState& state = service.volume(pool, volume);
                                std::vector<std::string> paths = snapshot_paths(state);
                                for (std::size_t i = 0; i < state.snapshots.size(); ++i)
                                    if (state.snapshots[i].name == name) {
                                        reply->returnResults(sdbus::ObjectPath(paths[i]));
                                        return;
                                    }
                                throw vmstor::Error(
                                    ErrorCode::Failed,
                                    fmt::format("snapshot '{}' was made but is not in the image's table",
                                                name));
                            } catch (...) {
                                reply->returnError(to_dbus_error(std::current_exception()));
                            }
                        });
                } catch (...) {
                    reply->returnError(to_dbus_error(std::current_exception()));
                }
            });
    });
}

void VolumeObject::CreateOverlay(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result,
                                 std::string name, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.CreateOverlay options",
                     {{"cluster_size", "t"}, {"lazy_refcounts", "b"}});
        storage::CreateVolumeRequest request;
        request.pool = pool_;
        request.name = name;
        request.cluster_size = opts.u64("cluster_size");
        request.lazy_refcounts = opts.flag("lazy_refcounts", false);
        reply_when_authorized(authorizer_, caller, alive_, std::move(result),
                              {opening(Action::ManageVolumes),
                               {Action::ManageVolumes, {{"pool", pool_}, {"volume", request.name}}}},
                              [this, request](const Caller&) mutable {
                                  std::string format = service_.data_format(state_);
                                  if (format != "raw" && format != "qcow2")
                                      not_yet("CreateOverlay of a non-raw, non-qcow2 volume");
                                  request.capacity = state_.capacity;
                                  request.backing_path = state_.path;
                                  request.backing_format = format;
                                  service_.check_volume_request(request);
                                  if (!service_.writes_files(pool_))
                                      not_yet("CreateOverlay in a pool without a directory");
                                  auto file = service_.new_volume_file(pool_, request.name, "volume-overlay",
                                                                       "qcow2");
                                  jobs_.claim_files({file->path()}, "create overlay");
                                  storage::create_image_file(*file, request);
                                  service_.volume_file_changed(pool_, request.name);
                                  return sdbus::ObjectPath(volume_path(pool_, request.name));
                              });
    });
}

void VolumeObject::Commit(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Commit options", JobOptions::keys_with({{"keep", "b"}}));
        JobOptions job_options = JobOptions::from(opts);
        when_authorized(
            authorizer_, caller, alive_, std::move(result), {opening(Action::ManageVolumes)},
            [this, options, job_options](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                JobSpec spec = commit_volume_job(
                    service_, state_,
                    Options(options, "Volume.Commit options", JobOptions::keys_with({{"keep", "b"}})));
                spec.started_by_uid = caller.uid;
                jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
            });
    });
}

void VolumeObject::Rebase(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result,
                          std::string backing, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Rebase options", rebase_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        std::vector<Permission> needed{opening(Action::ManageVolumes)};
        // A backing file outside every pool (a path, not a volume) also needs manage-pools.
        bool outside = false;
        if (backing.starts_with('/') && !backing.starts_with(std::string(root_path) + "/pool/"))
            if (auto why = backing_outside_pools(service_, backing, "")) {
                needed.push_back({Action::ManagePools, details(),
                                  fmt::format("cannot rebase volume '{}': {}", name_, *why)});
                outside = true;
            }
        when_authorized(authorizer_, caller, alive_, std::move(result), std::move(needed),
                        [this, backing, options, job_options,
                         outside](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                            JobSpec spec = rebase_volume_job(
                                service_, state_, backing,
                                Options(options, "Volume.Rebase options", rebase_option_keys()), outside);
                            spec.started_by_uid = caller.uid;
                            jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
                        });
    });
}

void VolumeObject::Measure(const Caller& caller, sdbus::Result<Dict>&& result, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Measure options", {{"format", "s"}, {"cluster_size", "t"}});
        std::string format = opts.text("format").value_or("qcow2");
        std::optional<std::uint64_t> cluster_size = opts.u64("cluster_size");
        when_authorized(authorizer_, caller.without_interaction(), alive_, std::move(result),
                        {opening(Action::Read)},
                        [this, format, cluster_size](const Caller&, sdbus::Result<Dict>&& reply) {
                            check_volume_file(service_, state_);
                            replies_.reply(
                                std::move(reply),
                                [image = service_.image_of(state_), format, cluster_size] {
                                    return storage::measure_image_file(image, format, cluster_size);
                                },
                                [](storage::MeasureReport report) {
                                    return Dict{{"required", report.required},
                                                {"fully-allocated", report.fully_allocated}};
                                });
                        });
    });
}

void VolumeObject::Map(const Caller& caller, sdbus::Result<MapReply>&& result, Dict options) {
    guarded([&] {
        Options opts(options, "Volume.Map options", {{"offset", "t"}, {"length", "t"}});
        std::uint64_t offset = opts.u64("offset").value_or(0);
        std::optional<std::uint64_t> length = opts.u64("length");
        if (length && *length == 0)
            throw vmstor::Error(ErrorCode::InvalidArgument,
                                "Volume.Map: option 'length' is 0 bytes; leave it out to map to the end");
        when_authorized(
            authorizer_, caller.without_interaction(), alive_, std::move(result), {opening(Action::Read)},
            [this, offset, length](const Caller&, sdbus::Result<MapReply>&& reply) {
                check_volume_file(service_, state_);
                if (std::string format = service_.data_format(state_); format != "raw" && format != "qcow2")
                    not_yet("Map of a volume that is neither raw nor qcow2");
                replies_.reply(std::move(reply), [image = service_.image_of(state_), offset, length] {
                    return MapReply{storage::map_image_file(image, offset, length, max_map_extents)};
                });
            });
    });
}

} // namespace vmstor::daemon
