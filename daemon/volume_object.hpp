// org.vmstor.Storage1.Volume: one object per volume of a running pool.
#pragma once

#include "authorized_call.hpp"
#include "storage/service.hpp"
#include "vmstor-volume-adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

namespace vmstor::daemon {

class JobRegistry;
class Authorizer;

class VolumeObject final
    : public sdbus::AdaptorInterfaces<org::vmstor::Storage1::Volume_adaptor, sdbus::ManagedObject_adaptor,
                                      sdbus::Properties_adaptor> {
  public:
    VolumeObject(sdbus::IConnection& bus, storage::StorageService& service, JobRegistry& jobs,
                 Authorizer& authorizer, const storage::VolumeState& state);
    ~VolumeObject();

    void changed(const storage::VolumeState& before, const storage::VolumeState& after);

  private:
    void Delete(sdbus::Result<>&& result, std::map<std::string, sdbus::Variant> options) override;
    void Resize(sdbus::Result<>&& result, uint64_t capacity,
                std::map<std::string, sdbus::Variant> options) override;
    void Wipe(sdbus::Result<sdbus::ObjectPath>&& result,
              std::map<std::string, sdbus::Variant> options) override;
    void Download(sdbus::Result<sdbus::ObjectPath>&& result, sdbus::UnixFd fd,
                  std::map<std::string, sdbus::Variant> options) override;
    void Upload(sdbus::Result<sdbus::ObjectPath>&& result, sdbus::UnixFd fd,
                std::map<std::string, sdbus::Variant> options) override;
    void Check(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
               std::map<std::string, sdbus::Variant> options) override;
    std::string Info(const std::map<std::string, sdbus::Variant>& options) override;
    void Convert(sdbus::Result<sdbus::ObjectPath>&& result, sdbus::ObjectPath pool, std::string name,
                 std::map<std::string, sdbus::Variant> options) override;
    void CreateSnapshot(sdbus::Result<sdbus::ObjectPath>&& result, std::string name,
                        std::map<std::string, sdbus::Variant> options) override;
    void CreateOverlay(sdbus::Result<sdbus::ObjectPath>&& result, std::string name,
                       std::map<std::string, sdbus::Variant> options) override;
    void Commit(sdbus::Result<sdbus::ObjectPath>&& result,
                std::map<std::string, sdbus::Variant> options) override;
    void Rebase(sdbus::Result<sdbus::ObjectPath>&& result, std::string backing,
                std::map<std::string, sdbus::Variant> options) override;
    std::map<std::string, sdbus::Variant>
    Measure(const std::map<std::string, sdbus::Variant>& options) override;
    std::vector<std::map<std::string, sdbus::Variant>>
    Map(const std::map<std::string, sdbus::Variant>& options) override;

    std::string Name() override { return name_; }
    std::string Key() override { return state().key; }
    std::string Path() override { return state().path; }
    sdbus::ObjectPath Pool() override;
    std::string Format() override { return state().format; }
    uint64_t Capacity() override { return state().capacity; }
    uint64_t Allocation() override { return state().allocation; }
    uint64_t Physical() override { return state().physical; }
    std::vector<sdbus::Struct<std::string, std::string>> BackingChain() override;
    bool Encrypted() override { return state().encrypted; }
    std::vector<std::string> UsedBy() override;
    bool Locked() override;

    // A copy, so that property reads never fail (see PoolObject::state).
    const storage::VolumeState& state() const { return state_; }
    [[noreturn]] void not_yet(std::string_view member) const;
    /// @brief The polkit details of this volume.
    std::map<std::string, std::string> details() const { return {{"pool", pool_}, {"volume", name_}}; }

    /// @brief Throws Busy when QEMU holds the image open for writing, or when other volumes are backed by it
    /// (`backing_users`).
    void refuse_if_busy(std::string_view what, bool backing_users) const;

    storage::StorageService& service_;
    JobRegistry& jobs_;
    Authorizer& authorizer_;
    std::string pool_;
    std::string name_;
    storage::VolumeState state_;
    Liveness alive_ = make_liveness();
};

} // namespace vmstor::daemon
