// The XML mapping of lib/virt, checked on libvirt's own output shapes (no libvirtd needed).
#include "common/error.hpp"
#include "storage/model.hpp"
#include "virt/descriptions.hpp"

#include <catch2/catch.hpp>

using namespace vmstor::virt;

TEST_CASE("pool XML is parsed into type, target and source") {
    auto description = parse_pool_xml(R"(<pool type='netfs'><name>n</name>
        <source><host name='nfs.example'/><dir path='/export'/><format type='nfs'/></source>
        <target><path>/mnt/n</path></target></pool>)");
    CHECK(description.type == "netfs");
    CHECK(description.target_path == "/mnt/n");
    CHECK(description.source.host == "nfs.example");
    CHECK(description.source.dir == "/export");
    CHECK(description.source.format == "nfs");
}

TEST_CASE("a pool definition becomes XML that reads back the same") {
    PoolDefinition definition;
    definition.name = "fast & <odd>";
    definition.type = "fs";
    definition.target_path = "/srv/fast";
    definition.source.devices = {"/dev/sdb1"};
    definition.source.format = "ext4";
    definition.permissions.mode = 0711;
    std::string xml = pool_xml(definition);
    CHECK(xml.find("<mode>0711</mode>") != std::string::npos);
    CHECK(xml.find("&amp;") != std::string::npos);
    auto back = parse_pool_xml(xml);
    CHECK(back.type == "fs");
    CHECK(back.target_path == "/srv/fast");
    CHECK(back.source == definition.source);
}

TEST_CASE("volume XML gives sizes, format, backing chain and encryption") {
    auto volume = parse_volume_xml(R"(<volume type='file'><name>v</name><key>/p/v</key>
        <capacity unit='bytes'>1073741824</capacity><allocation unit='bytes'>200704</allocation>
        <physical unit='bytes'>196624</physical>
        <target><path>/p/v</path><format type='qcow2'/><encryption format='luks'/></target>
        <backingStore><path>/p/base</path><format type='raw'/></backingStore></volume>)");
    CHECK(volume.key == "/p/v");
    CHECK(volume.path == "/p/v");
    CHECK(volume.capacity == 1073741824);
    CHECK(volume.allocation == 200704);
    CHECK(volume.physical == 196624);
    CHECK(volume.format == "qcow2");
    CHECK(volume.encrypted);
    REQUIRE(volume.backing_chain.size() == 1);
    CHECK(volume.backing_chain[0] == std::pair<std::string, std::string>("/p/base", "raw"));
}

TEST_CASE("a volume definition carries format, preallocation size, compat and backing") {
    VolumeDefinition definition;
    definition.name = "v";
    definition.capacity = 1 << 20;
    definition.allocation = 1 << 20;
    definition.format = "qcow2";
    definition.compat = "1.1";
    definition.lazy_refcounts = true;
    definition.backing_path = "/p/base";
    definition.backing_format = "qcow2";
    std::string xml = volume_xml(definition);
    for (const char* expected : {"<capacity unit=\"bytes\">1048576</capacity>", "<format type=\"qcow2\"",
                                 "<compat>1.1</compat>", "<lazy_refcounts", "<path>/p/base</path>"})
        CHECK(xml.find(expected) != std::string::npos);
}

TEST_CASE("malformed XML is an InvalidArgument error, not a crash") {
    CHECK_THROWS_AS(parse_pool_xml("<pool"), vmstor::Error);
    CHECK_THROWS_AS(parse_volume_xml(""), vmstor::Error);
}

TEST_CASE("pool capabilities list types, support and formats") {
    auto caps = parse_pool_capabilities(R"(<storagepoolCapabilities>
      <pool type='dir' supported='yes'><volOptions><defaultFormat type='raw'/>
        <enum name='targetFormatType'><value>raw</value><value>qcow2</value></enum></volOptions></pool>
      <pool type='rbd' supported='no'/></storagepoolCapabilities>)");
    REQUIRE(caps.size() == 2);
    CHECK(caps[0].type == "dir");
    CHECK(caps[0].supported);
    CHECK(caps[0].volume_formats == std::vector<std::string>{"raw", "qcow2"});
    CHECK_FALSE(caps[1].supported);
    CHECK(required_pool_fields("netfs") ==
          std::vector<std::string>{"source.host", "source.dir", "target.path"});
}

TEST_CASE("domain disks name files, devices, backing files and pool volumes") {
    auto disks = parse_domain_disks(R"(<domain><devices>
      <disk type='file'><source file='/p/top.qcow2'/><backingStore type='file'><source file='/p/base.qcow2'/>
        <backingStore/></backingStore></disk>
      <disk type='block'><source dev='/dev/vg/lv'/></disk>
      <disk type='volume'><source pool='p' volume='v'/></disk></devices></domain>)");
    CHECK(disks.paths == std::vector<std::string>{"/p/top.qcow2", "/p/base.qcow2", "/dev/vg/lv"});
    REQUIRE(disks.pool_volumes.size() == 1);
    CHECK(disks.pool_volumes[0].second == "v");
}

TEST_CASE("fill levels follow the pool's thresholds") {
    vmstor::storage::PoolState pool;
    pool.active = true;
    pool.capacity = 1000;
    pool.allocation = 500;
    pool.available = 500;
    vmstor::storage::Thresholds thresholds;
    using vmstor::storage::FillLevel;
    CHECK(fill_level(pool, thresholds) == FillLevel::Ok);
    pool.allocation = 850;
    CHECK(fill_level(pool, thresholds) == FillLevel::Warning);
    pool.allocation = 960;
    CHECK(fill_level(pool, thresholds) == FillLevel::Critical);
    pool.available = 0;
    CHECK(fill_level(pool, thresholds) == FillLevel::Full);
    // On a file system, full is when nothing more can be written, whatever libvirt counts as free.
    pool.available = 20;
    pool.kept_back = 20;
    CHECK(fill_level(pool, thresholds) == FillLevel::Full);
    pool.kept_back = 10;
    CHECK(fill_level(pool, thresholds) == FillLevel::Critical);
    pool.active = false;
    CHECK(fill_level(pool, thresholds) == FillLevel::Ok);
}
