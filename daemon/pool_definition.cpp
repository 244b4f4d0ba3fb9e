#include "pool_definition.hpp"

namespace vmstor::daemon {

namespace {

virt::PoolSource source_from(const Options& options) {
    virt::PoolSource source;
    source.devices = options.texts("source.device").value_or(std::vector<std::string>{});
    source.host = options.text("source.host").value_or("");
    source.dir = options.text("source.dir").value_or("");
    source.name = options.text("source.name").value_or("");
    source.format = options.text("source.format").value_or("");
    source.auth_secret = options.text("source.auth.secret").value_or("");
    return source;
}

std::vector<OptionSpec> source_keys(std::vector<OptionSpec> more) {
    for (OptionSpec key : {OptionSpec{"source.device", "as"}, OptionSpec{"source.host", "s"},
                           OptionSpec{"source.dir", "s"}, OptionSpec{"source.name", "s"},
                           OptionSpec{"source.format", "s"}, OptionSpec{"source.auth.secret", "s"}})
        more.push_back(key);
    return more;
}

} // namespace

virt::PoolDefinition read_pool_definition(const std::string& name, const std::string& type,
                                          const Options::Map& raw) {
    Options options(raw, "CreatePool definition",
                    source_keys({{"target.path", "s"},
                                 {"target.permissions.mode", "u"},
                                 {"target.permissions.owner", "u"},
                                 {"target.permissions.group", "u"},
                                 {"capacity", "t"}}));
    virt::PoolDefinition definition;
    definition.name = name;
    definition.type = type;
    definition.target_path = options.text("target.path").value_or("");
    definition.source = source_from(options);
    definition.permissions.mode = options.u32("target.permissions.mode");
    definition.permissions.owner = options.u32("target.permissions.owner");
    definition.permissions.group = options.u32("target.permissions.group");
    definition.capacity = options.u64("capacity");
    return definition;
}

virt::PoolSource read_pool_source(const Options::Map& raw, std::string_view context) {
    return source_from(Options(raw, context, source_keys({})));
}

Options::Map source_to_map(const virt::PoolSource& source) {
    Options::Map out;
    if (!source.devices.empty())
        out["source.device"] = source.devices;
    auto put = [&](const char* key, const std::string& value) {
        if (!value.empty())
            out[key] = value;
    };
    put("source.host", source.host);
    put("source.dir", source.dir);
    put("source.name", source.name);
    put("source.format", source.format);
    put("source.auth.secret", source.auth_secret);
    return out;
}

} // namespace vmstor::daemon
