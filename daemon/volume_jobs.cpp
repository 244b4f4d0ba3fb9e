#include "volume_jobs.hpp"

#include "object_paths.hpp"
#include "qcow2/operations.hpp"
#include "storage/image_jobs.hpp"
#include "storage/image_lock.hpp"
#include "virt/errors.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libvirt/libvirt.h>
#include <map>
#include <memory>
#include <optional>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmstor::daemon {

namespace {

/// @brief libvirt's code for a Volume.Wipe algorithm; none for "zero", which vmstor's engine does itself.
std::optional<unsigned> libvirt_wipe_algorithm(const std::string& name) {
    static const std::map<std::string, unsigned> algorithms{
        {"nnsa", VIR_STORAGE_VOL_WIPE_ALG_NNSA},
        {"dod", VIR_STORAGE_VOL_WIPE_ALG_DOD},
        {"bsi", VIR_STORAGE_VOL_WIPE_ALG_BSI},
        {"gutmann", VIR_STORAGE_VOL_WIPE_ALG_GUTMANN},
        {"schneier", VIR_STORAGE_VOL_WIPE_ALG_SCHNEIER},
        {"pfitzner7", VIR_STORAGE_VOL_WIPE_ALG_PFITZNER7},
        {"pfitzner33", VIR_STORAGE_VOL_WIPE_ALG_PFITZNER33},
        {"random", VIR_STORAGE_VOL_WIPE_ALG_RANDOM}};
    if (name == "zero")
        return std::nullopt;
    if (auto it = algorithms.find(name); it != algorithms.end())
        return it->second;
    std::string known = "zero";
    for (const auto& [key, code] : algorithms)
        known += ", " + key;
    throw vmstor::Error(ErrorCode::InvalidArgument,
                        fmt::format("option 'algorithm' is '{}', not one of {}", name, known));
}

void require_engine_format(const storage::StorageService& service, const storage::VolumeState& volume,
                           std::string_view what) {
    std::string format = service.data_format(volume);
    if (format != "raw" && format != "qcow2")
        throw vmstor::Error(
            ErrorCode::NotSupported,
            fmt::format("cannot {} volume '{}' in pool '{}': its format '{}' is not raw or qcow2", what,
                        volume.name, volume.pool, volume.format));
}

void refuse_if_locked(const storage::VolumeState& volume, std::string_view what) {
    if (storage::image_locked_for_writing(volume.path))
        throw vmstor::Error(ErrorCode::Busy,
                            fmt::format("cannot {} volume '{}' in pool '{}': another process (QEMU) "
                                        "has it open for writing",
                                        what, volume.name, volume.pool));
}

storage::StreamRange read_range(const Options& options) {
    storage::StreamRange range;
    range.offset = options.u64("offset").value_or(0);
    range.length = options.u64("length");
    range.sparse = options.flag("sparse", false);
    if (range.length && *range.length == 0)
        throw vmstor::Error(ErrorCode::InvalidArgument, "option 'length' is 0 bytes");
    return range;
}

void require_raw_stream(const Options& options, std::string_view what) {
    if (auto format = options.text("format"); format && *format != "raw")
        throw vmstor::Error(
            ErrorCode::NotSupported,
            fmt::format("{}: the stream format '{}' is not supported; streams are raw guest data", what,
                        *format));
}

std::shared_ptr<sdbus::UnixFd> share(sdbus::UnixFd fd) {
    if (!fd.isValid())
        throw vmstor::Error(ErrorCode::InvalidArgument, "the file descriptor is not valid");
    return std::make_shared<sdbus::UnixFd>(std::move(fd));
}

storage::ImageTarget read_target(const Options& options, const std::string& default_format,
                                 const std::string& path) {
    storage::ImageTarget target;
    target.path = path;
    target.format = options.text("format").value_or(default_format);
    if (target.format != "raw" && target.format != "qcow2")
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("option 'format' is '{}', not one of raw, qcow2", target.format));
    target.compress = options.flag("compress", false);
    target.compression_type = options.text("compression_type").value_or("zlib");
    target.cluster_size = options.u64("cluster_size");
    target.sync = options.flag("sync", true);
    bool qcow2 = target.format == "qcow2";
    if (!qcow2 && (target.compress || options.has("compression_type") || target.cluster_size))
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            "options compress, compression_type and cluster_size need "
                            "format qcow2");
    if (target.compression_type != "zlib" && target.compression_type != "zstd")
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("option 'compression_type' is '{}', not one of "
                                        "zlib, zstd",
                                        target.compression_type));
    if (auto size = target.cluster_size; size && (*size < 512 || *size > (2u << 20) || (*size & (*size - 1))))
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("option 'cluster_size' is {}: it must be a power of two from 512 to 2 MiB", *size));
    return target;
}

/// @brief The range of an Upload or Download: raw guest data, from an offset inside the volume.
storage::StreamRange stream_range(const storage::VolumeState& volume, const Options& options,
                                  std::string_view what) {
    require_raw_stream(options, what);
    storage::StreamRange range = read_range(options);
    if (range.offset > volume.capacity)
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("{} of volume '{}': offset {} is past its end ({} bytes)", what,
                                        volume.name, range.offset, volume.capacity));
    return range;
}

/// @brief The files of a volume's backing chain, nearest first.
std::vector<std::string> chain_files(const storage::VolumeState& volume) {
    std::vector<std::string> files;
    for (const auto& [path, format] : volume.backing_chain)
        files.push_back(path);
    return files;
}

/// @brief After a job wrote volume `name` of `pool` at `path`: throws Failed when the pool was stopped or
/// undefined meanwhile (behind vmstord's back: vmstord refuses it while a job runs), for then no pool has
/// the volume whatever the work did. A pool kept from before libvirtd went away still counts.
void require_pool_kept(const storage::StorageService& service, const std::string& pool,
                       const std::string& name, const std::string& path) {
    auto it = service.pools().find(pool);
    if (it != service.pools().end() && it->second.active)
        return;
    throw vmstor::Error(
        ErrorCode::Failed,
        fmt::format("volume '{}' was written at '{}', but pool '{}' was {} while the job ran: no "
                    "pool has the volume",
                    name, path, pool, it == service.pools().end() ? "undefined" : "stopped"));
}

/// @brief A job on one volume that reads its backing chain; when it `writes`, it writes the volume, which is
/// re-read when the job ends, else it reads the volume too.
JobSpec volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                   std::string operation, bool writes) {
    JobSpec spec;
    spec.operation = std::move(operation);
    spec.objects = {sdbus::ObjectPath(volume_path(volume.pool, volume.name))};
    spec.read_files = chain_files(volume);
    if (!writes) {
        spec.read_files.insert(spec.read_files.begin(), volume.path);
        return spec;
    }
    spec.files = {volume.path};
    spec.finished = [&service, pool = volume.pool, name = volume.name, path = volume.path](bool success) {
        service.volume_file_changed(pool, name);
        if (success)
            require_pool_kept(service, pool, name, path);
    };
    return spec;
}

/// @brief The path with every symlink, `.` and `..` resolved; nullopt when it does not exist.
std::optional<std::string> canonical(const std::string& path) {
    std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr), &std::free);
    if (!resolved)
        return std::nullopt;
    return std::string(resolved.get());
}

/// @brief Refuses what a device of a pool without a directory cannot hold: it has a fixed size and holds
/// the guest's bytes as they are.
void require_raw_device_target(const storage::ImageTarget& target, const std::string& pool,
                               const std::string& name) {
    if (target.format != "raw")
        throw vmstor::Error(
            ErrorCode::NotSupported,
            fmt::format("cannot create volume '{}' in pool '{}': a pool without a directory (disk, logical, "
                        "iscsi...) holds raw volumes, not {}; give format raw or choose a dir pool",
                        name, pool, target.format));
}

/// @brief Makes the (empty) new volume `name` that the job `spec` will fill from `target`: an unnamed file
/// in a pool with a directory (its name claimed by the job until it is published), or a raw device of at
/// least `capacity` bytes that libvirt makes in one without, recorded for deletion should vmstord stop
/// before the job ends. Sets the job's files and what happens once it ends: a file is re-read (a failed
/// job never named it); a device is deleted through libvirt when the job failed, and its record goes.
void make_new_volume(storage::StorageService& service, const std::string& pool, const std::string& name,
                     std::uint64_t capacity, storage::ImageTarget& target, JobSpec& spec) {
    target.into_device = !service.writes_files(pool);
    if (!target.into_device) {
        target.file = service.new_volume_file(pool, name, spec.operation, target.format);
        target.path = target.file->path();
        spec.new_files = {target.path};
        spec.finished = [&service, pool, name, path = target.path](bool success) {
            service.volume_file_changed(pool, name);
            if (success)
                require_pool_kept(service, pool, name, path);
        };
        return;
    }
    require_raw_device_target(target, pool, name);
    storage::StorageService::NewBlockVolume made =
        service.new_block_volume(pool, name, capacity, spec.operation);
    target.path = made.path;
    spec.files = {target.path};
    spec.finished = [&service, pool, name, path = made.path, record = made.record](bool success) {
        if (success) {
            service.forget_job_record(record);
            service.volume_file_changed(pool, name);
            require_pool_kept(service, pool, name, path);
            return;
        }
        try {
            service.delete_volume(pool, name);
            service.forget_job_record(record);
        } catch (const vmstor::Error& e) {
            spdlog::error(
                "after a failed job, cannot delete the half-written volume '{}' of pool '{}' (it is "
                "deleted at vmstord's next start): {}",
                name, pool, e.what());
        }
    };
}

/// @brief Runs `work`, which writes the new or existing volume `name` of `pool`, saying so when the
/// pool's file system is full: the engine's message names only the file's descriptor.
template <typename Work>
void naming_a_full_disk(const std::string& what, const std::string& name, const std::string& pool,
                        Work&& work) {
    try {
        work();
    } catch (const vmstor::Error& e) {
        if (e.code() != ErrorCode::NoSpace)
            throw;
        // The engine's own message names the new file's descriptor (/proc/self/fd/N), not the volume.
        throw vmstor::Error(
            ErrorCode::NoSpace,
            fmt::format("cannot {} volume '{}' of pool '{}': the disk is full (no space left on "
                        "the pool's file system or device)",
                        what, name, pool));
    }
}

} // namespace

void check_volume_file(storage::StorageService& service, const storage::VolumeState& volume) {
    if (service.writes_files(volume.pool))
        storage::VolumeFile(volume.path, O_RDONLY);
}

std::optional<std::string> backing_outside_pools(const storage::StorageService& service,
                                                 const std::string& backing, const std::string& base_dir) {
    std::string path = backing.starts_with('/') ? backing : base_dir + "/" + backing;
    auto resolved = canonical(path);
    if (!resolved)
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("the backing file '{}' does not exist", path));
    if (service.inside_pool_directory(*resolved))
        return std::nullopt;
    return fmt::format("the backing file '{}' ({}) is outside every pool's target directory, which needs "
                       "the polkit action org.vmstor.storage1.manage-pools",
                       path, *resolved);
}

std::vector<OptionSpec> copy_option_keys() {
    return JobOptions::keys_with({{"format", "s"},
                                  {"compress", "b"},
                                  {"compression_type", "s"},
                                  {"cluster_size", "t"},
                                  {"sync", "b"}});
}

std::vector<OptionSpec> stream_option_keys() {
    return JobOptions::keys_with({{"offset", "t"}, {"length", "t"}, {"sparse", "b"}, {"format", "s"}});
}

JobSpec copy_volume_job(storage::StorageService& service, const storage::VolumeState& source,
                        const std::string& target_pool, const std::string& name, const Options& options,
                        std::string operation, const std::optional<std::string>& snapshot) {
    require_engine_format(service, source, "copy");
    check_volume_file(service, source);
    // Checked before the target exists, so that a bad option leaves nothing behind.
    storage::ImageTarget target =
        read_target(options, service.writes_files(target_pool) ? service.data_format(source) : "raw", "");
    JobSpec spec;
    spec.operation = std::move(operation);
    spec.objects = {sdbus::ObjectPath(volume_path(source.pool, source.name)),
                    sdbus::ObjectPath(pool_path(target_pool))};
    make_new_volume(service, target_pool, name, source.capacity, target, spec);
    // The source and what it reads through must not change until the copy is whole.
    spec.read_files = chain_files(source);
    spec.read_files.insert(spec.read_files.begin(), source.path);
    // A snapshot's clusters stay as they are while a VM writes the image: it may keep running.
    spec.lock_read_files = !snapshot;
    spec.work = [source_image = service.image_of(source), target, snapshot, name,
                 target_pool](storage::JobContext& context) {
        naming_a_full_disk("copy into", name, target_pool,
                           [&] { storage::convert_image_file(source_image, target, context, snapshot); });
    };
    return spec;
}

JobSpec wipe_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                        const Options& options) {
    require_engine_format(service, volume, "wipe");
    check_volume_file(service, volume);
    std::string algorithm = options.text("algorithm").value_or("zero");
    std::optional<unsigned> pattern = libvirt_wipe_algorithm(algorithm);
    if (pattern && service.data_format(volume) != "raw")
        throw vmstor::Error(
            ErrorCode::NotSupported,
            fmt::format("cannot wipe volume '{}' with algorithm '{}': libvirt's wipe algorithms "
                        "overwrite the whole file, which would destroy a {} image; use 'zero'",
                        volume.name, algorithm, volume.format));
    refuse_if_locked(volume, "wipe");
    JobSpec spec = volume_job(service, volume, "volume-wipe", true);
    if (!pattern) {
        spec.work = [image = service.image_of(volume)](storage::JobContext& context) {
            storage::wipe_image_file(image, context);
        };
        return spec;
    }
    // libvirt runs scrub: no progress until it ends, and no way to stop it half-way.
    spec.cancelable = false;
    auto handle = std::make_shared<virt::VolumeHandle>(service.lookup_volume(volume.pool, volume.name));
    spec.work = [handle, pattern, size = volume.capacity, name = volume.name](storage::JobContext& context) {
        context.set_total(size);
        if (virStorageVolWipePattern(handle->get(), *pattern, 0) < 0)
            throw virt::last_error(fmt::format("cannot wipe volume '{}'", name));
        context.set_done(size);
    };
    return spec;
}

JobSpec upload_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                          sdbus::UnixFd fd, const Options& options) {
    require_engine_format(service, volume, "upload into");
    check_volume_file(service, volume);
    refuse_if_locked(volume, "upload into");
    storage::StreamRange range = stream_range(volume, options, "Volume.Upload");
    JobSpec spec = volume_job(service, volume, "volume-upload", true);
    spec.waits_on_caller = true;
    spec.work = [stream = share(std::move(fd)), image = service.image_of(volume), range, name = volume.name,
                 pool = volume.pool](storage::JobContext& context) {
        naming_a_full_disk("upload into", name, pool,
                           [&] { storage::upload_into_image(stream->get(), image, range, context); });
    };
    return spec;
}

JobSpec download_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                            sdbus::UnixFd fd, const Options& options) {
    require_engine_format(service, volume, "download");
    check_volume_file(service, volume);
    storage::StreamRange range = stream_range(volume, options, "Volume.Download");
    JobSpec spec = volume_job(service, volume, "volume-download", false);
    spec.waits_on_caller = true;
    spec.work = [stream = share(std::move(fd)), image = service.image_of(volume),
                 range](storage::JobContext& context) {
        storage::download_from_image(stream->get(), image, range, context);
    };
    return spec;
}

JobSpec import_volume_job(storage::StorageService& service, const std::string& pool, const std::string& name,
                          sdbus::UnixFd fd, const Options& options) {
    storage::StreamRange range = read_range(options);
    if (range.offset != 0)
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            "Pool.ImportVolume takes no 'offset': the stream is the "
                            "whole volume");
    auto stream = share(std::move(fd));
    std::uint64_t size = range.length.value_or(0);
    if (!range.length) {
        struct stat st {};
        if (fstat(stream->get(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
            throw vmstor::Error(
                ErrorCode::InvalidArgument,
                fmt::format("cannot import volume '{}' into pool '{}': the stream's size is unknown "
                            "(not a regular file); give the option 'length'",
                            name, pool));
        size = static_cast<std::uint64_t>(st.st_size);
    }
    storage::ImageTarget target = read_target(options, service.writes_files(pool) ? "qcow2" : "raw", "");
    if (target.compress)
        throw vmstor::Error(ErrorCode::NotSupported,
                            "Pool.ImportVolume does not compress; import, then Convert");
    JobSpec spec;
    spec.operation = "pool-import-volume";
    spec.waits_on_caller = true;
    spec.objects = {sdbus::ObjectPath(pool_path(pool))};
    make_new_volume(service, pool, name, size, target, spec);
    if (target.into_device) {
        spec.work = [stream, path = target.path, size, range, name, pool](storage::JobContext& context) {
            naming_a_full_disk("import into", name, pool, [&] {
                storage::upload_into_image(stream->get(), {path, "raw", false}, range, context);
                storage::zero_image_from({path, "raw", false}, size); // old data past the stream's end
            });
        };
        return spec;
    }
    spec.work = [stream, target, size, range, name, pool](storage::JobContext& context) {
        naming_a_full_disk("import into", name, pool, [&] {
            qcow2::CreateOptions create;
            create.format = qcow2::parse_format(target.format);
            create.size = size;
            if (target.cluster_size)
                create.cluster_size = *target.cluster_size;
            qcow2::create_image(target.file->engine_path(), create);
            // The unnamed file through its descriptor: engine_path() is not a name beneath the pool.
            storage::upload_into_image(stream->get(), {target.file->engine_path(), target.format, false},
                                       range, context);
            target.file->publish();
        });
    };
    return spec;
}

namespace {

/// @brief The (pool, volume) of a file that is a volume vmstord knows, if any.
std::optional<std::pair<std::string, std::string>> volume_at(storage::StorageService& service,
                                                             const std::string& path) {
    try {
        return service.lookup_volume_by_path(path);
    } catch (const vmstor::Error&) {
        return std::nullopt;
    }
}

/// @brief Throws InvalidArgument when `backing` (a path) is `volume` itself or a volume whose backing chain
/// contains it: the chain would loop, and QEMU could no longer open either image.
void refuse_backing_loop(const storage::StorageService& service, const storage::VolumeState& volume,
                         const std::string& backing) {
    const std::string self = canonical(volume.path).value_or(volume.path);
    const std::string target = canonical(backing).value_or(backing);
    if (target == self)
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("cannot rebase volume '{}' onto itself ('{}')", volume.name, backing));
    for (const auto& [pool, state] : service.pools())
        for (const auto& [name, other] : service.volumes(pool)) {
            if (canonical(other.path).value_or(other.path) != target)
                continue;
            for (const auto& [path, format] : other.backing_chain)
                if (canonical(path).value_or(path) == self)
                    throw vmstor::Error(
                        ErrorCode::InvalidArgument,
                        fmt::format(
                            "cannot rebase volume '{}' of pool '{}' onto volume '{}' of pool '{}': that "
                            "volume is backed by '{}' itself, so the backing chain would loop",
                            volume.name, volume.pool, name, pool, volume.name));
        }
}

void refuse_if_file_locked(const std::string& path, std::string_view what) {
    if (storage::image_locked_for_writing(path))
        throw vmstor::Error(
            ErrorCode::Busy,
            fmt::format("cannot {}: another process (QEMU) has '{}' open for writing", what, path));
}

} // namespace

JobSpec commit_volume_job(storage::StorageService& service, const storage::VolumeState& overlay,
                          const Options& options) {
    if (overlay.format != "qcow2" || overlay.backing_chain.empty())
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("cannot commit volume '{}' in pool '{}': it is not a qcow2 overlay with a "
                        "backing file",
                        overlay.name, overlay.pool));
    const auto& [base_path, base_format] = overlay.backing_chain.front();
    if (base_format.empty())
        throw vmstor::Error(
            ErrorCode::NotSupported,
            fmt::format("cannot commit volume '{}': its backing file '{}' has no recorded format",
                        overlay.name, base_path));
    // The base's content changes: every other volume that reads it (not through this overlay) would see
    // its guest data change under it.
    if (std::vector<std::string> others = service.volumes_backed_by(base_path, overlay.path); !others.empty())
        throw vmstor::Error(
            ErrorCode::Busy,
            fmt::format("cannot commit volume '{}' in pool '{}' into its backing file '{}': {} "
                        "backed by it too and would see its data change: {}",
                        overlay.name, overlay.pool, base_path,
                        others.size() == 1 ? "another volume is" : "other volumes are",
                        fmt::join(others, ", ")));
    check_volume_file(service, overlay);
    refuse_if_locked(overlay, "commit");
    refuse_if_file_locked(base_path, fmt::format("commit volume '{}'", overlay.name));
    JobSpec spec;
    spec.operation = "volume-commit";
    spec.objects = {sdbus::ObjectPath(volume_path(overlay.pool, overlay.name))};
    spec.files = {overlay.path, base_path};
    spec.work = [image = service.image_of(overlay),
                 keep = options.flag("keep", false)](storage::JobContext& context) {
        storage::commit_image_file(image, keep, context);
    };
    auto base = volume_at(service, base_path);
    spec.finished = [&service, pool = overlay.pool, name = overlay.name, base](bool) {
        service.volume_file_changed(pool, name);
        if (base)
            service.volume_file_changed(base->first, base->second);
    };
    return spec;
}

JobSpec rebase_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                          const std::string& backing, const Options& options, bool manage_pools_granted) {
    if (volume.format != "qcow2")
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("cannot rebase volume '{}' in pool '{}': only qcow2 volumes have a backing "
                        "file, it is {}",
                        volume.name, volume.pool, volume.format));
    std::string backing_path = backing;
    std::string backing_format = options.text("backing_format").value_or("");
    if (backing.starts_with("/org/vmstor/Storage1/pool/")) {
        auto [pool, name] = volume_names_from_path(backing);
        const storage::VolumeState& target = service.volume(pool, name);
        backing_path = target.path;
        if (backing_format.empty())
            backing_format = target.format;
    }
    if (!backing_path.empty() && backing_path.front() != '/')
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("cannot rebase volume '{}': backing '{}' is neither an absolute path nor a "
                        "volume object path",
                        volume.name, backing));
    if (!backing_path.empty() && backing_format != "raw" && backing_format != "qcow2")
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("cannot rebase volume '{}': backing_format must be raw or qcow2 (a backing "
                        "file's format is never probed), not '{}'",
                        volume.name, backing_format));
    if (!backing_path.empty())
        refuse_backing_loop(service, volume, backing_path);
    if (!backing_path.empty()) {
        try {
            if (auto why = backing_outside_pools(service, backing_path, ""); why && !manage_pools_granted)
                throw vmstor::Error(ErrorCode::NotAuthorized, *why);
        } catch (const vmstor::Error& e) {
            throw vmstor::Error(e.code(),
                                fmt::format("cannot rebase volume '{}': {}", volume.name, e.what()));
        }
    }
    check_volume_file(service, volume);
    refuse_if_locked(volume, "rebase");
    JobSpec spec = volume_job(service, volume, "volume-rebase", true);
    // A safe rebase reads the new backing chain as well as the old one.
    if (!backing_path.empty()) {
        spec.read_files.push_back(backing_path);
        for (const auto& [pool, state] : service.pools())
            for (const auto& [name, other] : service.volumes(pool))
                if (other.path == backing_path) {
                    std::vector<std::string> below = chain_files(other);
                    spec.read_files.insert(spec.read_files.end(), below.begin(), below.end());
                }
    }
    spec.work = [image = service.image_of(volume), backing_path, backing_format,
                 unsafe = options.flag("unsafe", false)](storage::JobContext& context) {
        storage::rebase_image_file(image, backing_path, backing_format, unsafe, context);
    };
    return spec;
}

JobSpec build_pool_job(storage::StorageService& service, const std::string& pool) {
    JobSpec spec;
    spec.operation = "pool-build";
    spec.objects = {sdbus::ObjectPath(pool_path(pool))};
    spec.cancelable = false; // libvirt cannot stop a build half-way
    spec.work = [build = service.prepare_build(pool)](storage::JobContext&) {
        build();
    };
    spec.finished = [&service, pool](bool) {
        service.resync_pool(pool);
    };
    return spec;
}

} // namespace vmstor::daemon
