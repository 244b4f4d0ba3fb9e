// What vmstord keeps across restarts, as JSON files in its state directory: pool thresholds, and the
// image format of every volume it created or saw (so that a volume's content never changes its format).
#pragma once

#include "model.hpp"

#include <map>
#include <string>

namespace vmstor::storage {

class SettingsStore {
  public:
    /// @brief An empty `directory` keeps nothing on disk (settings live as long as the process).
    explicit SettingsStore(std::string directory);

    /// @brief Thresholds by pool name; an unreadable or damaged file is logged and read as empty.
    std::map<std::string, Thresholds> load_thresholds() const;
    /// @brief Replaces the file atomically (write, fsync, rename); throws vmstor::Error on failure.
    void save_thresholds(const std::map<std::string, Thresholds>& thresholds) const;
    /// @brief The state directory ("" when nothing is kept on disk).
    const std::string& directory() const { return directory_; }

    /// @brief Image formats on record, by volume path; a damaged file is logged and read as empty.
    std::map<std::string, std::string> load_formats() const;
    /// @brief Replaces the formats file atomically; throws vmstor::Error on failure.
    void save_formats(const std::map<std::string, std::string>& formats) const;

  private:
    std::string file() const { return directory_ + "/settings.json"; }
    std::string formats_file() const { return directory_ + "/formats.json"; }

    std::string directory_;
};

} // namespace vmstor::storage
