#include "info_json.hpp"

namespace vmstor::img {

Json info_json(const qcow2::ImageInfo& info) {
    Json j;
    if (info.backing_format)
        j["backing-filename-format"] = *info.backing_format;
    if (!info.snapshots.empty()) {
        Json list = Json::array();
        for (const auto& s : info.snapshots) {
            Json item;
            if (s.has_icount && s.icount != UINT64_MAX)
                item["icount"] = s.icount;
            item["vm-clock-nsec"] = s.vm_clock_nsec % 1000000000ull;
            item["name"] = s.name;
            item["date-sec"] = s.date_sec;
            item["date-nsec"] = s.date_nsec;
            item["vm-clock-sec"] = s.vm_clock_nsec / 1000000000ull;
            item["id"] = s.id;
            item["vm-state-size"] = s.vm_state_size;
            list.push_back(item);
        }
        j["snapshots"] = list;
    }
    j["virtual-size"] = info.virtual_size;
    j["filename"] = info.filename;
    if (info.cluster_size)
        j["cluster-size"] = *info.cluster_size;
    j["format"] = std::string(qcow2::format_name(info.format));
    j["actual-size"] = info.actual_size;
    if (info.format == qcow2::ImageFormat::Qcow2) {
        Json data;
        data["compat"] = info.compat;
        if (info.data_file)
            data["data-file"] = *info.data_file;
        if (info.data_file)
            data["data-file-raw"] = info.data_file_raw;
        data["compression-type"] = info.compression_type;
        if (info.compat != "0.10") {
            data["lazy-refcounts"] = info.lazy_refcounts;
            if (!info.bitmaps.empty()) {
                Json list = Json::array();
                for (const auto& b : info.bitmaps) {
                    Json flags = Json::array();
                    if (b.in_use)
                        flags.push_back("in-use");
                    if (b.auto_)
                        flags.push_back("auto");
                    Json item;
                    item["flags"] = flags;
                    item["name"] = b.name;
                    item["granularity"] = b.granularity;
                    list.push_back(item);
                }
                data["bitmaps"] = list;
            }
        }
        data["refcount-bits"] = info.refcount_bits;
        if (info.compat != "0.10") {
            data["corrupt"] = info.corrupt;
            data["extended-l2"] = info.extended_l2;
        }
        Json specific;
        specific["type"] = "qcow2";
        specific["data"] = data;
        j["format-specific"] = specific;
    }
    if (info.full_backing_filename)
        j["full-backing-filename"] = *info.full_backing_filename;
    if (info.backing_filename)
        j["backing-filename"] = *info.backing_filename;
    j["dirty-flag"] = info.dirty;
    return j;
}

} // namespace vmstor::img
