#include "descriptions.hpp"

#include "common/error.hpp"

#include <fmt/format.h>
#include <pugixml.hpp>
#include <sstream>

namespace vmstor::virt {

namespace {

pugi::xml_document load(std::string_view xml, std::string_view what) {
    pugi::xml_document doc;
    pugi::xml_parse_result result = doc.load_buffer(xml.data(), xml.size());
    if (!result)
        throw vmstor::Error(
            ErrorCode::InvalidArgument,
            fmt::format("cannot parse {} XML: {} at offset {}", what, result.description(), result.offset));
    return doc;
}

std::string to_string(const pugi::xml_document& doc) {
    std::ostringstream out;
    doc.save(out, "  ", pugi::format_default | pugi::format_no_declaration);
    return out.str();
}

void add_permissions(pugi::xml_node parent, const Permissions& permissions) {
    if (!permissions.mode && !permissions.owner && !permissions.group)
        return;
    pugi::xml_node node = parent.append_child("permissions");
    if (permissions.mode)
        node.append_child("mode").text().set(fmt::format("{:04o}", *permissions.mode).c_str());
    if (permissions.owner)
        node.append_child("owner").text().set(*permissions.owner);
    if (permissions.group)
        node.append_child("group").text().set(*permissions.group);
}

bool has_source(const PoolSource& from) {
    return !from.devices.empty() || !from.host.empty() || !from.dir.empty() || !from.name.empty() ||
           !from.format.empty() || !from.auth_secret.empty();
}

void append_source(pugi::xml_node parent, const PoolSource& from, const std::string& type) {
    if (!has_source(from))
        return;
    pugi::xml_node source = parent.append_child("source");
    if (!from.host.empty())
        source.append_child("host").append_attribute("name").set_value(from.host.c_str());
    for (const std::string& device : from.devices)
        source.append_child("device").append_attribute("path").set_value(device.c_str());
    if (!from.dir.empty())
        source.append_child("dir").append_attribute("path").set_value(from.dir.c_str());
    if (!from.name.empty())
        source.append_child("name").text().set(from.name.c_str());
    if (!from.format.empty())
        source.append_child("format").append_attribute("type").set_value(from.format.c_str());
    if (!from.auth_secret.empty()) {
        pugi::xml_node auth = source.append_child("auth");
        auth.append_attribute("type").set_value(type == "rbd" ? "ceph" : "chap");
        auth.append_attribute("username").set_value("admin");
        auth.append_child("secret").append_attribute("uuid").set_value(from.auth_secret.c_str());
    }
}

PoolSource read_source(pugi::xml_node source) {
    PoolSource out;
    for (pugi::xml_node device : source.children("device"))
        out.devices.emplace_back(device.attribute("path").as_string());
    out.host = source.child("host").attribute("name").as_string();
    out.dir = source.child("dir").attribute("path").as_string();
    out.name = source.child_value("name");
    out.format = source.child("format").attribute("type").as_string();
    out.auth_secret = source.child("auth").child("secret").attribute("uuid").as_string();
    return out;
}

} // namespace

PoolDescription parse_pool_xml(std::string_view xml) {
    pugi::xml_document doc = load(xml, "pool");
    pugi::xml_node pool = doc.child("pool");
    PoolDescription out;
    out.name = pool.child_value("name");
    out.type = pool.attribute("type").as_string();
    out.target_path = pool.child("target").child_value("path");
    out.source = read_source(pool.child("source"));
    return out;
}

VolumeDescription parse_volume_xml(std::string_view xml) {
    pugi::xml_document doc = load(xml, "volume");
    pugi::xml_node volume = doc.child("volume");
    VolumeDescription out;
    out.key = volume.child_value("key");
    out.capacity = volume.child("capacity").text().as_ullong();
    out.allocation = volume.child("allocation").text().as_ullong();
    out.physical = volume.child("physical").text().as_ullong(out.allocation);
    pugi::xml_node target = volume.child("target");
    out.path = target.child_value("path");
    out.format = target.child("format").attribute("type").as_string();
    out.encrypted = static_cast<bool>(target.child("encryption"));
    for (pugi::xml_node backing = volume.child("backingStore"); backing && backing.child("path");
         backing = backing.child("backingStore"))
        out.backing_chain.emplace_back(backing.child_value("path"),
                                       backing.child("format").attribute("type").as_string());
    return out;
}

std::string pool_xml(const PoolDefinition& definition) {
    pugi::xml_document doc;
    pugi::xml_node pool = doc.append_child("pool");
    pool.append_attribute("type").set_value(definition.type.c_str());
    pool.append_child("name").text().set(definition.name.c_str());
    if (definition.capacity)
        pool.append_child("capacity").text().set(*definition.capacity);

    append_source(pool, definition.source, definition.type);
    if (!definition.target_path.empty() || definition.permissions.mode || definition.permissions.owner ||
        definition.permissions.group) {
        pugi::xml_node target = pool.append_child("target");
        if (!definition.target_path.empty())
            target.append_child("path").text().set(definition.target_path.c_str());
        add_permissions(target, definition.permissions);
    }
    return to_string(doc);
}

std::string volume_xml(const VolumeDefinition& definition) {
    pugi::xml_document doc;
    pugi::xml_node volume = doc.append_child("volume");
    volume.append_child("name").text().set(definition.name.c_str());
    pugi::xml_node capacity = volume.append_child("capacity");
    capacity.append_attribute("unit").set_value("bytes");
    capacity.text().set(definition.capacity);
    pugi::xml_node allocation = volume.append_child("allocation");
    allocation.append_attribute("unit").set_value("bytes");
    allocation.text().set(definition.allocation);
    pugi::xml_node target = volume.append_child("target");
    if (!definition.format.empty())
        target.append_child("format").append_attribute("type").set_value(definition.format.c_str());
    add_permissions(target, definition.permissions);
    if (!definition.compat.empty())
        target.append_child("compat").text().set(definition.compat.c_str());
    if (definition.lazy_refcounts)
        target.append_child("features").append_child("lazy_refcounts");
    if (!definition.backing_path.empty()) {
        pugi::xml_node backing = volume.append_child("backingStore");
        backing.append_child("path").text().set(definition.backing_path.c_str());
        if (!definition.backing_format.empty())
            backing.append_child("format").append_attribute("type").set_value(
                definition.backing_format.c_str());
    }
    return to_string(doc);
}

std::string source_xml(const std::string& type, const PoolSource& source) {
    if (!has_source(source))
        return {};
    pugi::xml_document doc;
    append_source(doc, source, type);
    return to_string(doc);
}

std::vector<PoolSource> parse_pool_sources(std::string_view xml) {
    pugi::xml_document doc = load(xml, "pool sources");
    std::vector<PoolSource> out;
    for (pugi::xml_node source : doc.child("sources").children("source"))
        out.push_back(read_source(source));
    return out;
}

DomainDisks parse_domain_disks(std::string_view xml) {
    pugi::xml_document doc = load(xml, "domain");
    DomainDisks out;
    for (pugi::xml_node disk : doc.child("domain").child("devices").children("disk")) {
        for (pugi::xml_node layer = disk; layer; layer = layer.child("backingStore")) {
            pugi::xml_node source = layer.child("source");
            if (!source)
                break;
            if (source.attribute("pool") && source.attribute("volume"))
                out.pool_volumes.emplace_back(source.attribute("pool").as_string(),
                                              source.attribute("volume").as_string());
            for (const char* attribute : {"file", "dev"})
                if (source.attribute(attribute))
                    out.paths.emplace_back(source.attribute(attribute).as_string());
        }
    }
    return out;
}

std::vector<PoolTypeCapabilities> parse_pool_capabilities(std::string_view xml) {
    pugi::xml_document doc = load(xml, "pool capabilities");
    std::vector<PoolTypeCapabilities> out;
    for (pugi::xml_node pool : doc.child("storagepoolCapabilities").children("pool")) {
        PoolTypeCapabilities caps;
        caps.type = pool.attribute("type").as_string();
        caps.supported = std::string_view(pool.attribute("supported").as_string()) == "yes";
        for (pugi::xml_node value : pool.child("poolOptions")
                                        .find_child_by_attribute("enum", "name", "sourceFormatType")
                                        .children("value"))
            caps.source_formats.emplace_back(value.child_value());
        for (pugi::xml_node value : pool.child("volOptions")
                                        .find_child_by_attribute("enum", "name", "targetFormatType")
                                        .children("value"))
            caps.volume_formats.emplace_back(value.child_value());
        out.push_back(std::move(caps));
    }
    return out;
}

std::vector<std::string> required_pool_fields(std::string_view type) {
    // From libvirt's storage pool XML documentation: what each backend refuses to define without.
    if (type == "dir")
        return {"target.path"};
    if (type == "fs")
        return {"source.device", "target.path"};
    if (type == "netfs")
        return {"source.host", "source.dir", "target.path"};
    if (type == "logical")
        return {"source.name"};
    if (type == "disk")
        return {"source.device", "target.path"};
    if (type == "iscsi" || type == "iscsi-direct")
        return {"source.host", "source.device"};
    if (type == "rbd" || type == "gluster" || type == "sheepdog")
        return {"source.host", "source.name"};
    if (type == "scsi")
        return {"source.name"};
    if (type == "mpath")
        return {"target.path"};
    if (type == "zfs" || type == "vstorage")
        return {"source.name"};
    return {};
}

} // namespace vmstor::virt
