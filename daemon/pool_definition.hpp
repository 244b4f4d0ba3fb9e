// The `definition` and `source` maps of Manager.CreatePool and Manager.FindPoolSources, read into the
// service layer's plain structs (and back, for Pool.Source).
#pragma once

#include "options.hpp"
#include "virt/descriptions.hpp"

namespace vmstor::daemon {

virt::PoolDefinition read_pool_definition(const std::string& name, const std::string& type,
                                          const Options::Map& raw);
virt::PoolSource read_pool_source(const Options::Map& raw, std::string_view context);
Options::Map source_to_map(const virt::PoolSource& source);

} // namespace vmstor::daemon
