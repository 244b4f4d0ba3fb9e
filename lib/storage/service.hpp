// The service layer: a cached, event-driven model of libvirt's pools and volumes, and the operations on
// them. Everything here runs on the one thread that the Scheduler drives; libvirt's event thread only
// posts work to it.
#pragma once

#include "job_records.hpp"
#include "model.hpp"
#include "new_volume_file.hpp"
#include "schedules.hpp"
#include "settings_store.hpp"
#include "virt/connection.hpp"
#include "virt/descriptions.hpp"
#include "volume_file.hpp"
#include "volume_request.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vmstor::storage {

struct CreatePoolRequest {
    virt::PoolDefinition definition;
    bool build = true;
    bool start = true;
    bool autostart = true;
};

struct PoolSourceCandidate {
    virt::PoolSource source;
};

class StorageService {
  public:
    StorageService(std::string uri, Scheduler& scheduler, Observer& observer,
                   SettingsStore settings = SettingsStore(""));
    ~StorageService();

    /// @brief Connects and loads the model; when libvirt is unreachable, keeps retrying with backoff.
    void start();

    bool connected() const { return connection_ != nullptr; }
    const std::string& uri() const { return uri_; }
    const std::string& libvirt_version() const { return libvirt_version_; }
    const std::map<std::string, PoolState>& pools() const { return pools_; }
    /// @brief Volumes of a pool by name; empty for an unknown or inactive pool.
    const std::map<std::string, VolumeState>& volumes(const std::string& pool) const;
    /// @brief "pool/volume" of every volume whose backing chain contains the file `path`; with
    /// `except_through`, neither the volume at that path nor those that see `path` through it.
    std::vector<std::string> volumes_backed_by(const std::string& path,
                                               const std::string& except_through = {}) const;
    /// @brief Throws Busy, saying it cannot `what` `volume`, when other volumes are backed by it.
    void refuse_if_backing_others(const VolumeState& volume, std::string_view what) const;
    const PoolState& pool(const std::string& name) const;                              ///< throws NotFound
    const VolumeState& volume(const std::string& pool, const std::string& name) const; ///< throws NotFound
    const Thresholds& thresholds(const std::string& pool) const;
    /// @brief The volumes' snapshot and backup schedules, kept in the state directory.
    ScheduleBook& schedules() { return schedules_; }
    const ScheduleBook& schedules() const { return schedules_; }

    // Pools. Each throws vmstor::Error; the model reflects the change before it returns.
    std::string create_pool(const CreatePoolRequest& request);
    std::string define_pool_xml(const std::string& xml);
    void start_pool(const std::string& name);
    void stop_pool(const std::string& name);
    /// @brief Checks that the pool can be built; returns the libvirt call to run on a worker thread
    /// (libvirt handles may be used from any thread). Call resync_pool afterwards.
    std::function<void()> prepare_build(const std::string& name);
    /// @brief Re-reads a pool and all its volumes after work done off the main thread (a build).
    void resync_pool(const std::string& name);
    /// @brief After a job wrote a volume's file (new or changed): has libvirt refresh the pool, then
    /// re-reads that volume and the pool's sizes. Errors are logged, not thrown: the job is done.
    void volume_file_changed(const std::string& pool, const std::string& volume);
    void refresh_pool(const std::string& name);
    void undefine_pool(const std::string& name);
    void delete_pool(const std::string& name);
    void set_autostart(const std::string& name, bool autostart);
    void set_thresholds(const std::string& name, const Thresholds& thresholds);
    std::string pool_xml(const std::string& name);
    std::vector<virt::PoolTypeCapabilities> pool_capabilities();
    std::vector<virt::PoolSource> find_pool_sources(const std::string& type, const virt::PoolSource& hint);

    // Volumes.
    /// @brief Checks a CreateVolume request (name, pool, sizes, option combinations); throws.
    void check_volume_request(const CreateVolumeRequest& request) const;
    /// @brief True for pools whose volumes are files in a directory that vmstord may write itself.
    bool writes_files(const std::string& pool) const;
    /// @brief How the engine reaches the volume's image: by a checked descriptor in a pool directory,
    /// else (a device of a pool without a directory) by its path.
    VolumeImage image_of(const VolumeState& volume) const;
    /// @brief What the engine reads a volume as: its format for image files (raw, qcow2, or another that
    /// the engine refuses); for a volume of a pool without a directory (a partition, logical volume or
    /// LUN, whose libvirt format is a partition type such as 'none'), raw unless libvirt says qcow2.
    std::string data_format(const VolumeState& volume) const;
    /// @brief Puts on record that the image at `path` holds `format` (raw or qcow2): the volume there is
    /// read as that format whatever its content later looks like. Call before the file can be seen.
    void record_format(const std::string& path, const std::string& format);
    /// @brief True when the volume's backing chain names a file outside every pool (a volume first seen as
    /// such a qcow2, made by another tool): opening it, which reads that file, needs manage-pools.
    bool backing_outside_pools(const VolumeState& volume) const;
    /// @brief True when `path` (symlinks and `..` resolved as far as it exists) lies beneath the target
    /// directory of a pool.
    bool inside_pool_directory(const std::string& path) const;
    /// @brief Creates a volume through libvirt (pools vmstord does not write itself).
    const VolumeState& create_volume(const CreateVolumeRequest& request);
    void delete_volume(const std::string& pool, const std::string& name);
    void resize_volume(const std::string& pool, const std::string& name, std::uint64_t capacity, bool shrink);
    /// @brief Creates the unnamed file of a new volume that `operation` will fill and then publish, after
    /// the checks CreateVolume makes, with `format` (raw, qcow2) on record for its final name. Only pools
    /// with a target directory. The name itself is not taken until publish: the caller claims it
    /// meanwhile (JobSpec::new_files).
    std::shared_ptr<NewVolumeFile> new_volume_file(const std::string& pool, const std::string& name,
                                                   const std::string& operation, const std::string& format);
    struct NewBlockVolume {
        std::string path;   ///< the device
        std::string record; ///< the job record that has vmstord delete it at its next start
    };
    /// @brief Has libvirt make the device of a new volume of at least `capacity` bytes that `operation`
    /// will fill with raw data (pools without a directory: disk, logical, iscsi...), recorded first in
    /// the state directory. A job that ends calls forget_job_record (after delete_volume if it failed).
    NewBlockVolume new_block_volume(const std::string& pool, const std::string& name, std::uint64_t capacity,
                                    const std::string& operation);
    /// @brief Removes a job record once what it protects is complete or deleted.
    void forget_job_record(const std::string& record) const { records_.remove(record); }
    /// @brief (pool, volume) of the volume at `path`; throws NotFound.
    std::pair<std::string, std::string> lookup_volume_by_path(const std::string& path);
    /// @brief libvirt's handle of a volume (it keeps its connection alive; usable from any thread).
    virt::VolumeHandle lookup_volume(const std::string& pool, const std::string& name) const;

  private:
    /// @brief The pool of a volume about to be created, after the checks every new volume needs (name,
    /// pool running, name free).
    const PoolState& pool_for_new_volume(const std::string& pool, const std::string& name) const;
    void connect();
    /// @brief At the first connection: deletes what jobs cut short by the last stop left (their records).
    void clean_up_after_jobs();
    void clean_up_after_job(const JobRecord& record);
    void schedule_reconnect();
    void on_connection_closed(unsigned generation);
    void poll();
    virConnectPtr conn() const; ///< throws LibvirtError while disconnected

    /// @brief How much of a pool's volumes a sync re-reads: new ones only, every one when the pool's
    /// sizes moved (someone changed volumes under us), or every one.
    enum class VolumeSync { NewOnly, IfSizesMoved, All };
    /// @brief Compares libvirt's pools with the model.
    void sync_all(VolumeSync volumes);
    /// @brief Re-reads one pool (and its volume list); removes it from the model if libvirt forgot it.
    void sync_pool(const std::string& name, VolumeSync volumes);
    void sync_pool_from(virStoragePoolPtr pool, VolumeSync volumes);
    void sync_volumes(virStoragePoolPtr pool, const std::string& pool_name, bool deep);
    /// @brief Gives a volume just read from libvirt the format on record (recording libvirt's probe the
    /// first time the volume is seen); a volume on record as raw has no backing chain.
    void apply_format_record(VolumeState& volume);
    /// @brief True when `path` is neither inside a running pool's directory nor a volume of a pool.
    bool outside_pools(const std::string& path) const;
    void save_formats();
    void remove_pool(const std::string& name);
    /// @brief Re-reads which domains use which volumes (libvirt domain XML) and which images QEMU holds
    /// open for writing, updating VolumeState::used_by and ::locked.
    void sync_usage();
    /// @brief Fills a volume's used_by and locked, and its snapshots when `fresh` (just read from
    /// libvirt, so none yet) or when the image file's stamp moved (qemu-img snapshot, say).
    void fill_usage(VolumeState& volume, bool fresh) const;
    /// @brief What vmstord can re-read of a volume without libvirt (its snapshots, from the image; its
    /// lock), after a change libvirt could not be asked about (libvirtd away).
    void reread_image(const std::string& pool, const std::string& volume);
    /// @brief Re-reads one volume after an operation on it, then its pool's sizes.
    void sync_volume(const std::string& pool, const std::string& name);
    void remove_volumes_of(const std::string& pool);
    void update_pool(PoolState state);
    void update_overcommit(const std::string& pool);
    void check_fill_level(const PoolState& pool);

    virt::PoolHandle lookup_pool(const std::string& name) const;

    std::string uri_;
    Scheduler& scheduler_;
    Observer& observer_;
    std::unique_ptr<virt::Connection> connection_;
    unsigned generation_ = 0; ///< tells a stale close event from one for the current connection
    std::chrono::milliseconds reconnect_delay_;
    std::string libvirt_version_;
    std::map<std::string, PoolState> pools_;
    std::map<std::string, std::map<std::string, VolumeState>> volumes_;
    SettingsStore settings_;
    ScheduleBook schedules_;
    JobRecords records_;
    bool cleaned_up_ = false;                      ///< clean_up_after_jobs ran
    std::map<std::string, Thresholds> thresholds_; ///< by pool name, kept while a pool is away
    /// Image format of every volume vmstord created or saw, by path (see record_format).
    std::map<std::string, std::string> formats_;
    bool formats_changed_ = false; ///< formats_ differs from the file: saved after the sync
    std::map<std::string, FillLevel> fill_levels_;
    std::map<std::string, std::vector<std::string>> domains_by_path_; ///< from the last sync_domain_usage
    unsigned polls_ = 0;
    /// (mtime in ns, size) of each qcow2 image when its snapshots were last read: a change made outside
    /// vmstord and libvirt (qemu-img snapshot) shows by the file's stamp.
    mutable std::map<std::string, std::pair<std::int64_t, std::int64_t>> image_stamps_;
    std::shared_ptr<bool> alive_; ///< lets posted work from libvirt's thread notice the service is gone
};

} // namespace vmstor::storage
