#include "volume_object.hpp"

#include "error_boundary.hpp"
#include "object_paths.hpp"
#include "options.hpp"

#include <fmt/format.h>

namespace vmstor::daemon {

namespace {

constexpr const char* volume_interface = "org.vmstor.Storage1.Volume";

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

} // namespace

VolumeObject::VolumeObject(sdbus::IConnection& bus, storage::StorageService& service,
                           const storage::VolumeState& state)
    : AdaptorInterfaces(bus, volume_path(state.pool, state.name)), service_(service), pool_(state.pool),
      name_(state.name), state_(state) {
    registerAdaptor();
    emitInterfacesAddedSignal();
}

VolumeObject::~VolumeObject() {
    emitInterfacesRemovedSignal();
    unregisterAdaptor();
}

void VolumeObject::changed(const storage::VolumeState& before, const storage::VolumeState& after) {
    state_ = after;
    auto names = changed_properties(before, after);
    if (!names.empty())
        emitPropertiesChangedSignal(volume_interface, names);
}

void VolumeObject::not_yet(std::string_view member) const {
    throw vmstor::Error(ErrorCode::NotSupported,
                        fmt::format("Volume.{} on volume '{}' in pool '{}' is not supported "
                                    "by this vmstord yet",
                                    member, name_, pool_));
}

void VolumeObject::Delete(const std::map<std::string, sdbus::Variant>& options) {
    guarded([&] {
        Options(options, "Volume.Delete options", {});
        service_.delete_volume(pool_, name_);
    });
}

void VolumeObject::Resize(const uint64_t& capacity, const std::map<std::string, sdbus::Variant>& options) {
    guarded([&] {
        Options opts(options, "Volume.Resize options", {{"shrink", "b"}});
        service_.resize_volume(pool_, name_, capacity, opts.flag("shrink", false));
    });
}

sdbus::ObjectPath VolumeObject::Wipe(const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("Wipe"); });
}
sdbus::ObjectPath VolumeObject::Download(const sdbus::UnixFd&, const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("Download"); });
}
sdbus::ObjectPath VolumeObject::Upload(const sdbus::UnixFd&, const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("Upload"); });
}
std::map<std::string, sdbus::Variant> VolumeObject::Check(const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> std::map<std::string, sdbus::Variant> { not_yet("Check"); });
}
std::string VolumeObject::Info(const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> std::string { not_yet("Info"); });
}
sdbus::ObjectPath VolumeObject::Convert(const sdbus::ObjectPath&, const std::string&,
                                        const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("Convert"); });
}
sdbus::ObjectPath VolumeObject::CreateSnapshot(const std::string&,
                                               const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("CreateSnapshot"); });
}
sdbus::ObjectPath VolumeObject::CreateOverlay(const std::string&,
                                              const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("CreateOverlay"); });
}
sdbus::ObjectPath VolumeObject::Commit(const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("Commit"); });
}
sdbus::ObjectPath VolumeObject::Rebase(const std::string&, const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> sdbus::ObjectPath { not_yet("Rebase"); });
}
std::map<std::string, sdbus::Variant> VolumeObject::Measure(const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> std::map<std::string, sdbus::Variant> { not_yet("Measure"); });
}
std::vector<std::map<std::string, sdbus::Variant>>
VolumeObject::Map(const std::map<std::string, sdbus::Variant>&) {
    return guarded([&]() -> std::vector<std::map<std::string, sdbus::Variant>> { not_yet("Map"); });
}

sdbus::ObjectPath VolumeObject::Pool() {
    return sdbus::ObjectPath(pool_path(pool_));
}

std::vector<sdbus::Struct<std::string, std::string>> VolumeObject::BackingChain() {
    std::vector<sdbus::Struct<std::string, std::string>> out;
    for (const auto& [path, format] : state().backing_chain)
        out.emplace_back(path, format);
    return out;
}

std::vector<std::string> VolumeObject::UsedBy() {
    return state().used_by;
}

bool VolumeObject::Locked() {
    return state().locked;
}

} // namespace vmstor::daemon
