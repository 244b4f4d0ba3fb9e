// org.vmstor.Storage1.Volume: one object per volume of a running pool. Volumes are registered through
// sd-bus directly (volume_bus.hpp), so a volume costs the bus only its entry in the index: the handlers
// below are sdbus-c++-style (arguments read, replies through sdbus::Result) and called from the one
// static vtable of volume_vtable.cpp.
#pragma once

#include "authorized_call.hpp"
#include "map_reply.hpp"
#include "storage/service.hpp"

#include <map>
#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <vector>

namespace vmstor::daemon {

class JobRegistry;
class Authorizer;
class ReplyWorkers;
class VolumeBus;
class ScheduleRunner;

class VolumeObject final {
  public:
    /// @brief Registers the object on `bus` and emits InterfacesAdded.
    VolumeObject(VolumeBus& bus, storage::StorageService& service, JobRegistry& jobs, Authorizer& authorizer,
                 ReplyWorkers& replies, ScheduleRunner& schedules, const storage::VolumeState& state);
    /// @brief Emits InterfacesRemoved and unregisters the object.
    ~VolumeObject();
    VolumeObject(const VolumeObject&) = delete;
    VolumeObject& operator=(const VolumeObject&) = delete;

    void changed(const storage::VolumeState& before, const storage::VolumeState& after);

    // A copy, so that property reads never fail (see PoolObject::state).
    const storage::VolumeState& state() const { return state_; }

  private:
    friend struct VolumeVtable; // dispatches the interface's calls to the handlers below

    using Dict = std::map<std::string, sdbus::Variant>;

    void Delete(const Caller& caller, sdbus::Result<>&& result, Dict options);
    void Resize(const Caller& caller, sdbus::Result<>&& result, uint64_t capacity, Dict options);
    void Wipe(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, Dict options);
    void Download(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, sdbus::UnixFd fd,
                  Dict options);
    void Upload(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, sdbus::UnixFd fd,
                Dict options);
    void Check(const Caller& caller, sdbus::Result<Dict>&& result, Dict options);
    void Info(const Caller& caller, sdbus::Result<std::string>&& result, Dict options);
    void Convert(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, sdbus::ObjectPath pool,
                 std::string name, Dict options);
    void CreateSnapshot(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, std::string name,
                        Dict options);
    void CreateOverlay(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, std::string name,
                       Dict options);
    void Commit(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, Dict options);
    void Rebase(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, std::string backing,
                Dict options);
    void Measure(const Caller& caller, sdbus::Result<Dict>&& result, Dict options);
    void Map(const Caller& caller, sdbus::Result<MapReply>&& result, Dict options);
    void SetSchedule(const Caller& caller, sdbus::Result<>&& result, Dict schedule, Dict options);
    void RunSchedule(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result, Dict options);
    /// @brief Puts `schedule` (checked, authorized) on record and says so on the bus.
    void set_schedule(const Caller& who, const storage::VolumeSchedule& schedule);

    [[noreturn]] void not_yet(std::string_view member) const;
    /// @brief The polkit details of this volume.
    std::map<std::string, std::string> details() const { return {{"pool", pool_}, {"volume", name_}}; }
    /// @brief `usual` on this volume; manage-pools when opening it would read a file outside every pool
    /// (a backing file that another tool's image names).
    Permission opening(Action usual) const;

    /// @brief Throws Busy when a job of vmstord reads or writes the image, when QEMU holds it open for
    /// writing, or when other volumes are backed by it (`backing_users`).
    void refuse_if_busy(std::string_view what, bool backing_users) const;

    VolumeBus& bus_;
    storage::StorageService& service_;
    JobRegistry& jobs_;
    Authorizer& authorizer_;
    ReplyWorkers& replies_;
    ScheduleRunner& schedules_;
    std::string pool_;
    std::string name_;
    storage::VolumeState state_;
    Liveness alive_ = make_liveness();
};

} // namespace vmstor::daemon
