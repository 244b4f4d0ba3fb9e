#include "snapshot_object.hpp"

#include "authorizer.hpp"
#include "caller.hpp"
#include "error_boundary.hpp"
#include "job_registry.hpp"
#include "object_paths.hpp"
#include "options.hpp"
#include "storage/snapshots.hpp"
#include "volume_jobs.hpp"

#include "common/names.hpp"

#include <fmt/format.h>
#include <set>

namespace vmstor::daemon {

std::vector<std::string> snapshot_paths(const storage::VolumeState& volume) {
    std::vector<std::string> paths;
    std::set<std::string> names;
    const std::string base = volume_path(volume.pool, volume.name) + "/snapshot/";
    for (const storage::SnapshotState& snapshot : volume.snapshots) {
        bool first = !snapshot.name.empty() && names.insert(snapshot.name).second;
        paths.push_back(base +
                        escape_path_segment(first ? snapshot.name : snapshot.name + "@" + snapshot.id));
    }
    return paths;
}

SnapshotObject::SnapshotObject(sdbus::IConnection& bus, std::string path, storage::StorageService& service,
                               JobRegistry& jobs, Authorizer& authorizer, const storage::VolumeState& volume,
                               const storage::SnapshotState& snapshot)
    : AdaptorInterfaces(bus, std::move(path)), service_(service), jobs_(jobs), authorizer_(authorizer),
      pool_(volume.pool), volume_(volume.name), image_path_(volume.path), snapshot_(snapshot) {
    registerAdaptor();
    emitInterfacesAddedSignal();
}

SnapshotObject::~SnapshotObject() {
    without_throwing("InterfacesRemoved", [this] { emitInterfacesRemovedSignal(); });
    unregisterAdaptor();
}

sdbus::ObjectPath SnapshotObject::Volume() {
    return sdbus::ObjectPath(volume_path(pool_, volume_));
}

std::map<std::string, std::string> SnapshotObject::details() const {
    return {{"pool", pool_}, {"volume", volume_}, {"snapshot", snapshot_.name}};
}

void SnapshotObject::change_image(sdbus::Result<>&& result,
                                  std::function<void(const storage::VolumeImage& image)> change) {
    auto reply = std::make_shared<sdbus::Result<>>(std::move(result));
    // Replied through `reply` from here on: a refusal to start is its error too.
    try {
        jobs_.run_briefly(
            image_path_,
            [image = service_.image_of(service_.volume(pool_, volume_)), change = std::move(change)] {
                change(image);
            },
            [reply, &service = service_, pool = pool_, volume = volume_](std::exception_ptr error) {
                // This object may be gone after the re-read (a deleted snapshot): use only what was captured.
                service.volume_file_changed(pool, volume);
                if (error)
                    reply->returnError(to_dbus_error(error));
                else
                    reply->returnResults();
            });
    } catch (...) {
        reply->returnError(to_dbus_error(std::current_exception()));
    }
}

void SnapshotObject::Revert(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "Snapshot.Revert options", {});
        when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                        Action::ManageSnapshots, details(), [this](const Caller&, sdbus::Result<>&& reply) {
                            const storage::VolumeState& volume = service_.volume(pool_, volume_);
                            check_volume_file(service_, volume);
                            service_.refuse_if_backing_others(volume, "revert to a snapshot");
                            spdlog::info("reverting volume '{}' of pool '{}' to snapshot '{}' (id {})",
                                         volume_, pool_, snapshot_.name, snapshot_.id);
                            change_image(std::move(reply),
                                         [id = snapshot_.id](const storage::VolumeImage& image) {
                                             storage::revert_to_snapshot(image, id);
                                         });
                        });
    });
}

void SnapshotObject::Delete(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "Snapshot.Delete options", {});
        when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                        Action::ManageSnapshots, details(), [this](const Caller&, sdbus::Result<>&& reply) {
                            check_volume_file(service_, service_.volume(pool_, volume_));
                            spdlog::info("deleting snapshot '{}' (id {}) of volume '{}' of pool '{}'",
                                         snapshot_.name, snapshot_.id, volume_, pool_);
                            change_image(std::move(reply),
                                         [id = snapshot_.id](const storage::VolumeImage& image) {
                                             storage::delete_snapshot_in(image, id);
                                         });
                        });
    });
}

void SnapshotObject::CloneTo(sdbus::Result<sdbus::ObjectPath>&& result, sdbus::ObjectPath pool,
                             std::string name, std::map<std::string, sdbus::Variant> options) {
    guarded([&] {
        Options opts(options, "Snapshot.CloneTo options", copy_option_keys());
        JobOptions job_options = JobOptions::from(opts);
        std::string target_pool = pool_name_from_path(pool);
        const storage::VolumeState& parent = service_.volume(pool_, volume_);
        Action reading = service_.backing_outside_pools(parent) ? Action::ManagePools : Action::ManageVolumes;
        // On what it reads and on what it creates: a rule that limits a user to one pool holds.
        when_authorized(authorizer_, Caller::of(getObject()), alive_, std::move(result),
                        {{Action::ManageVolumes, {{"pool", target_pool}, {"volume", name}}},
                         {reading, {{"pool", pool_}, {"volume", volume_}}}},
                        [this, target_pool, name, options,
                         job_options](const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& reply) {
                            JobSpec spec = copy_volume_job(
                                service_, service_.volume(pool_, volume_), target_pool, name,
                                Options(options, "Snapshot.CloneTo options", copy_option_keys()),
                                "snapshot-clone", snapshot_.id);
                            spec.objects.insert(spec.objects.begin(), getObjectPath());
                            spec.started_by_uid = caller.uid;
                            jobs_.start_and_reply(std::move(spec), job_options, std::move(reply));
                        });
    });
}

} // namespace vmstor::daemon
