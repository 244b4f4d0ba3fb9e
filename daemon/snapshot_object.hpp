// org.vmstor.Storage1.Snapshot: one object per internal snapshot of a qcow2 volume, under the volume's
// path. Its properties never change: a snapshot that changes is a new object.
#pragma once

#include "authorized_call.hpp"
#include "storage/service.hpp"
#include "vmstor-snapshot-adaptor.h"

#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <vector>

namespace vmstor::daemon {

class JobRegistry;
class Authorizer;

/// @brief The object path of each snapshot of `volume`, in table order: the escaped name, or, for a
/// second snapshot of the same name (QEMU allows them), the escaped "name@id".
std::vector<std::string> snapshot_paths(const storage::VolumeState& volume);

class SnapshotObject final
    : public sdbus::AdaptorInterfaces<org::vmstor::Storage1::Snapshot_adaptor, sdbus::ManagedObject_adaptor,
                                      sdbus::Properties_adaptor> {
  public:
    SnapshotObject(sdbus::IConnection& bus, std::string path, storage::StorageService& service,
                   JobRegistry& jobs, Authorizer& authorizer, const storage::VolumeState& volume,
                   const storage::SnapshotState& snapshot);
    ~SnapshotObject();

    const storage::SnapshotState& state() const { return snapshot_; }

  private:
    void Revert(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void Delete(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void CloneTo(sdbus::Result<sdbus::ObjectPath>&& result, sdbus::ObjectPath pool, std::string name,
                 std::map<std::string, sdbus::Variant> options) override;

    std::string Name() override { return snapshot_.name; }
    std::string Id() override { return snapshot_.id; }
    uint64_t Created() override { return snapshot_.created_usec; }
    uint64_t VMStateSize() override { return snapshot_.vm_state_size; }
    uint64_t VirtualSize() override { return snapshot_.virtual_size; }
    sdbus::ObjectPath Volume() override;

    /// @brief The polkit details of this snapshot.
    std::map<std::string, std::string> details() const;
    /// @brief Runs `change` on the volume's image off the bus thread, then re-reads the volume and replies.
    void change_image(sdbus::Result<>&& result,
                      std::function<void(const storage::VolumeImage& image)> change);

    storage::StorageService& service_;
    JobRegistry& jobs_;
    Authorizer& authorizer_;
    std::string pool_;
    std::string volume_;
    std::string image_path_;
    storage::SnapshotState snapshot_;
    Liveness alive_ = make_liveness();
};

} // namespace vmstor::daemon
