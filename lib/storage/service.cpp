// StorageService: connection, reconnection with backoff, and keeping the model equal to libvirt's view.
#include "service.hpp"

#include "image_lock.hpp"
#include "libvirt_reads.hpp"
#include "snapshots.hpp"
#include "virt/errors.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <set>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

namespace vmstor::storage {

namespace {
// libvirt has no volume events: a cheap comparison of volume lists at this interval catches what other
// clients do within the 2 s the API promises.
constexpr std::chrono::milliseconds poll_interval{1000};
constexpr std::chrono::milliseconds first_reconnect_delay{250};
constexpr std::chrono::milliseconds max_reconnect_delay{4000};
// Domain XML and image locks are re-read every this many polls: a few seconds' delay is fine for UsedBy
// and Locked, and operations that need the truth probe the lock themselves.
constexpr unsigned polls_per_usage_sync = 3;

const std::map<std::string, VolumeState> no_volumes;
const Thresholds default_thresholds;
} // namespace

StorageService::StorageService(std::string uri, Scheduler& scheduler, Observer& observer,
                               SettingsStore settings)
    : uri_(std::move(uri)), scheduler_(scheduler), observer_(observer),
      reconnect_delay_(first_reconnect_delay), settings_(std::move(settings)),
      schedules_(settings_.directory()), records_(settings_.directory()),
      thresholds_(settings_.load_thresholds()), formats_(settings_.load_formats()),
      alive_(std::make_shared<bool>(true)) {}

StorageService::~StorageService() = default;

void StorageService::start() {
    try {
        connect();
    } catch (const vmstor::Error& e) {
        spdlog::warn("{}; retrying", e.what());
        schedule_reconnect();
    }
    scheduler_.after(poll_interval, [this] { poll(); });
}

void StorageService::connect() {
    unsigned generation = ++generation_;
    std::weak_ptr<bool> alive = alive_;
    virt::ConnectionEvents events;
    events.closed = [this, alive, generation] {
        scheduler_.post([this, alive, generation] {
            if (!alive.expired())
                on_connection_closed(generation);
        });
    };
    events.pool_event = [this, alive](const std::string& pool) {
        scheduler_.post([this, alive, pool] {
            if (alive.expired() || !connected())
                return;
            try {
                sync_pool(pool, VolumeSync::All);
            } catch (const vmstor::Error& e) {
                spdlog::warn("cannot follow an event of pool '{}': {}", pool, e.what());
            }
        });
    };
    connection_ = virt::Connection::open(uri_, std::move(events));
    libvirt_version_ = connection_->libvirt_version();
    reconnect_delay_ = first_reconnect_delay;
    spdlog::info("connected to libvirt {} at {}", libvirt_version_, uri_);
    if (!std::exchange(cleaned_up_, true))
        clean_up_after_jobs();
    sync_usage();
    sync_all(VolumeSync::All);
    observer_.connection_changed(true);
}

void StorageService::on_connection_closed(unsigned generation) {
    if (generation != generation_ || !connection_)
        return;
    spdlog::warn("lost the connection to libvirt at {}; serving the last known state", uri_);
    connection_.reset();
    observer_.connection_changed(false);
    schedule_reconnect();
}

void StorageService::schedule_reconnect() {
    scheduler_.after(reconnect_delay_, [this] {
        if (connected())
            return;
        try {
            connect();
        } catch (const vmstor::Error& e) {
            connection_.reset();
            spdlog::debug("reconnect failed: {}", e.what());
            reconnect_delay_ = std::min(reconnect_delay_ * 2, max_reconnect_delay);
            schedule_reconnect();
        }
    });
}

void StorageService::poll() {
    if (connected()) {
        try {
            sync_all(VolumeSync::IfSizesMoved);
            if (++polls_ % polls_per_usage_sync == 0)
                sync_usage();
        } catch (const vmstor::Error& e) {
            spdlog::debug("poll failed: {}", e.what());
        }
    }
    scheduler_.after(poll_interval, [this] { poll(); });
}

virConnectPtr StorageService::conn() const {
    if (!connection_)
        throw vmstor::Error(
            ErrorCode::LibvirtError,
            fmt::format("libvirt at '{}' is not reachable right now; vmstord is reconnecting", uri_));
    return connection_->get();
}

const std::map<std::string, VolumeState>& StorageService::volumes(const std::string& pool) const {
    auto it = volumes_.find(pool);
    return it == volumes_.end() ? no_volumes : it->second;
}

std::vector<std::string> StorageService::volumes_backed_by(const std::string& path,
                                                           const std::string& except_through) const {
    auto in_chain = [](const VolumeState& volume, const std::string& file) {
        return std::any_of(volume.backing_chain.begin(), volume.backing_chain.end(),
                           [&](const auto& layer) { return layer.first == file; });
    };
    std::vector<std::string> users;
    for (const auto& [pool_name, list] : volumes_)
        for (const auto& [name, volume] : list) {
            if (!except_through.empty() &&
                (volume.path == except_through || in_chain(volume, except_through)))
                continue;
            if (in_chain(volume, path))
                users.push_back(pool_name + "/" + name);
        }
    return users;
}

void StorageService::refuse_if_backing_others(const VolumeState& volume, std::string_view what) const {
    std::vector<std::string> users = volumes_backed_by(volume.path);
    if (!users.empty())
        throw vmstor::Error(ErrorCode::Busy,
                            fmt::format("cannot {} volume '{}' in pool '{}': {} backed by it: {}", what,
                                        volume.name, volume.pool,
                                        users.size() == 1 ? "another volume is" : "other volumes are",
                                        fmt::join(users, ", ")));
}

const PoolState& StorageService::pool(const std::string& name) const {
    auto it = pools_.find(name);
    if (it == pools_.end())
        throw vmstor::Error(ErrorCode::NotFound, fmt::format("there is no pool named '{}'", name));
    return it->second;
}

const VolumeState& StorageService::volume(const std::string& pool_name, const std::string& name) const {
    pool(pool_name);
    const auto& list = volumes(pool_name);
    auto it = list.find(name);
    if (it == list.end())
        throw vmstor::Error(ErrorCode::NotFound,
                            fmt::format("there is no volume named '{}' in pool '{}'", name, pool_name));
    return it->second;
}

const Thresholds& StorageService::thresholds(const std::string& pool) const {
    auto it = thresholds_.find(pool);
    return it == thresholds_.end() ? default_thresholds : it->second;
}

virt::PoolHandle StorageService::lookup_pool(const std::string& name) const {
    virt::PoolHandle handle(virStoragePoolLookupByName(conn(), name.c_str()));
    if (!handle)
        throw virt::last_error(fmt::format("cannot find pool '{}'", name));
    return handle;
}

virt::VolumeHandle StorageService::lookup_volume(const std::string& pool_name,
                                                 const std::string& name) const {
    virt::PoolHandle pool = lookup_pool(pool_name);
    virt::VolumeHandle handle(virStorageVolLookupByName(pool.get(), name.c_str()));
    if (!handle)
        throw virt::last_error(fmt::format("cannot find volume '{}' in pool '{}'", name, pool_name));
    return handle;
}

void StorageService::sync_all(VolumeSync volumes) {
    virStoragePoolPtr* raw = nullptr;
    int count = virConnectListAllStoragePools(conn(), &raw, 0);
    if (count < 0)
        throw virt::last_error("cannot list storage pools");
    auto handles = virt::adopt_array<virt::PoolHandle>(raw, count);
    std::set<std::string> seen;
    for (const auto& handle : handles) {
        seen.insert(virStoragePoolGetName(handle.get()));
        sync_pool_from(handle.get(), volumes);
    }
    std::vector<std::string> gone;
    for (const auto& [name, state] : pools_)
        if (!seen.contains(name))
            gone.push_back(name);
    for (const auto& name : gone)
        remove_pool(name);
}

void StorageService::sync_pool(const std::string& name, VolumeSync volumes) {
    virt::PoolHandle handle(virStoragePoolLookupByName(conn(), name.c_str()));
    if (!handle) {
        remove_pool(name);
        return;
    }
    sync_pool_from(handle.get(), volumes);
}

void StorageService::sync_pool_from(virStoragePoolPtr pool, VolumeSync volumes) {
    PoolState state = read_pool_state(pool);
    auto known = pools_.find(state.name);
    // A pool whose sizes moved had volumes change under it: re-read their details too.
    bool sizes_moved = known != pools_.end() && (known->second.allocation != state.allocation ||
                                                 known->second.available != state.available);
    bool deep = volumes == VolumeSync::All || (volumes == VolumeSync::IfSizesMoved && sizes_moved);
    std::string name = state.name;
    update_pool(std::move(state));
    if (pools_.at(name).active)
        sync_volumes(pool, name, deep);
    else
        remove_volumes_of(name);
    update_overcommit(name);
}

void StorageService::sync_volumes(virStoragePoolPtr pool, const std::string& pool_name, bool deep) {
    virStorageVolPtr* raw = nullptr;
    int count = virStoragePoolListAllVolumes(pool, &raw, 0);
    if (count < 0)
        throw virt::last_error(fmt::format("cannot list the volumes of pool '{}'", pool_name));
    auto handles = virt::adopt_array<virt::VolumeHandle>(raw, count);
    auto& known = volumes_[pool_name];
    std::set<std::string> seen;
    for (const auto& handle : handles) {
        std::string name = virStorageVolGetName(handle.get());
        seen.insert(name);
        auto it = known.find(name);
        if (it != known.end() && !deep)
            continue;
        VolumeState state;
        try {
            state = read_volume_state(pool_name, handle.get());
            apply_format_record(state);
            fill_usage(state, true);
        } catch (const vmstor::Error& e) {
            // Deleted between the listing and the read: the next comparison settles it.
            spdlog::debug("{}", e.what());
            continue;
        }
        if (it == known.end()) {
            const VolumeState& added = known.emplace(name, std::move(state)).first->second;
            observer_.volume_added(added);
        } else if (!(it->second == state)) {
            VolumeState before = std::exchange(it->second, std::move(state));
            observer_.volume_changed(before, it->second);
        }
    }
    for (auto it = known.begin(); it != known.end();) {
        if (seen.contains(it->first)) {
            ++it;
            continue;
        }
        VolumeState removed = std::move(it->second);
        it = known.erase(it);
        image_stamps_.erase(removed.path);
        formats_changed_ |= formats_.erase(removed.path) > 0; // a new file there is a new volume
        observer_.volume_removed(removed);
    }
    save_formats();
}

void StorageService::update_pool(PoolState state) {
    auto it = pools_.find(state.name);
    if (it == pools_.end()) {
        state.overcommit = 0;
        const PoolState& added = pools_.emplace(state.name, std::move(state)).first->second;
        observer_.pool_added(added);
        fill_levels_[added.name] = fill_level(added, thresholds(added.name));
        return;
    }
    state.overcommit = it->second.overcommit;
    if (it->second == state)
        return;
    PoolState before = std::exchange(it->second, std::move(state));
    observer_.pool_changed(before, it->second);
    check_fill_level(it->second);
}

void StorageService::update_overcommit(const std::string& pool_name) {
    auto it = pools_.find(pool_name);
    if (it == pools_.end())
        return;
    double sum = 0;
    for (const auto& [name, volume] : volumes(pool_name))
        sum += static_cast<double>(volume.capacity);
    double overcommit = it->second.capacity ? sum / static_cast<double>(it->second.capacity) : 0;
    if (overcommit == it->second.overcommit)
        return;
    PoolState before = it->second;
    it->second.overcommit = overcommit;
    observer_.pool_changed(before, it->second);
}

void StorageService::check_fill_level(const PoolState& pool) {
    FillLevel level = fill_level(pool, thresholds(pool.name));
    FillLevel& known = fill_levels_[pool.name];
    if (level == known)
        return;
    known = level;
    double used =
        pool.capacity ? static_cast<double>(pool.allocation) / static_cast<double>(pool.capacity) : 0;
    observer_.fill_level_crossed(pool, level, used);
}

void StorageService::remove_volumes_of(const std::string& pool) {
    auto it = volumes_.find(pool);
    if (it == volumes_.end())
        return;
    std::map<std::string, VolumeState> removed = std::move(it->second);
    volumes_.erase(it);
    for (const auto& [name, volume] : removed) {
        image_stamps_.erase(volume.path);
        observer_.volume_removed(volume);
    }
}

void StorageService::remove_pool(const std::string& name) {
    auto it = pools_.find(name);
    if (it == pools_.end())
        return;
    remove_volumes_of(name);
    PoolState removed = std::move(it->second);
    pools_.erase(it);
    fill_levels_.erase(name);
    observer_.pool_removed(removed);
}

} // namespace vmstor::storage

namespace vmstor::storage {

void StorageService::fill_usage(VolumeState& volume, bool fresh) const {
    auto it = domains_by_path_.find(volume.path);
    volume.used_by = it == domains_by_path_.end() ? std::vector<std::string>{} : it->second;
    volume.locked = image_locked_for_writing(volume.path);
    if (volume.format != "qcow2" || !pools_.contains(volume.pool))
        return;
    struct stat st {};
    if (::stat(volume.path.c_str(), &st) != 0)
        return;
    std::pair<std::int64_t, std::int64_t> stamp{
        std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size};
    auto [known, added] = image_stamps_.try_emplace(volume.path, stamp);
    if (!fresh && !added && known->second == stamp)
        return; // the snapshots the model holds are current
    known->second = stamp;
    volume.snapshots = read_snapshots(image_of(volume), volume.capacity);
}

void StorageService::sync_usage() {
    virDomainPtr* raw = nullptr;
    int count = virConnectListAllDomains(conn(), &raw, 0);
    if (count < 0)
        throw virt::last_error("cannot list domains");
    std::map<std::string, std::vector<std::string>> by_path;
    for (const auto& handle : virt::adopt_array<virt::DomainHandle>(raw, count)) {
        virDomainPtr domain = handle.get();
        const char* name = virDomainGetName(domain);
        virt::CString xml(virDomainGetXMLDesc(domain, 0));
        if (!name || !xml)
            continue; // gone between the listing and the read
        virt::DomainDisks disks = virt::parse_domain_disks(xml.get());
        for (const auto& [pool, volume] : disks.pool_volumes) {
            auto list = volumes_.find(pool);
            if (list == volumes_.end() || !list->second.contains(volume))
                continue;
            disks.paths.push_back(list->second.at(volume).path);
        }
        for (const std::string& path : disks.paths) {
            auto& users = by_path[path];
            if (std::find(users.begin(), users.end(), name) == users.end())
                users.emplace_back(name);
        }
    }
    domains_by_path_ = std::move(by_path);
    for (auto& [pool_name, list] : volumes_) {
        for (auto& [name, volume] : list) {
            VolumeState updated = volume;
            fill_usage(updated, false);
            if (updated == volume)
                continue;
            VolumeState before = std::exchange(volume, std::move(updated));
            observer_.volume_changed(before, volume);
        }
    }
}

} // namespace vmstor::storage
