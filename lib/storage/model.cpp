#include "model.hpp"

namespace vmstor::storage {

std::string_view fill_level_name(FillLevel level) {
    switch (level) {
    case FillLevel::Ok:
        return "ok";
    case FillLevel::Warning:
        return "warning";
    case FillLevel::Critical:
        return "critical";
    case FillLevel::Full:
        return "full";
    }
    return "ok";
}

FillLevel fill_level(const PoolState& pool, const Thresholds& thresholds) {
    if (!pool.active || pool.capacity == 0)
        return FillLevel::Ok;
    if (pool.available <= pool.kept_back)
        return FillLevel::Full;
    double used = static_cast<double>(pool.allocation) / static_cast<double>(pool.capacity);
    if (used >= thresholds.critical)
        return FillLevel::Critical;
    if (used >= thresholds.warning)
        return FillLevel::Warning;
    return FillLevel::Ok;
}

} // namespace vmstor::storage
