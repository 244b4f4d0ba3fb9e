// commit and rebase, checked with qemu-img (check, compare, info) and against qemu-img's own results.
#include "common/error.hpp"
#include "helpers.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace qcow2_test;
namespace q = vmstor::qcow2;

namespace {

void sh(const std::string& command) {
    auto r = run(command);
    INFO(command << "\n" << r.output);
    REQUIRE(r.status == 0);
}

void qemu_io_write(const std::string& image, const std::string& commands) {
    sh(qemu_io() + " " + commands + " " + image);
}

/// @brief The guest content of an image (and its chain) as a raw file made by qemu-img.
std::string flatten(const std::string& image, const std::string& raw) {
    sh(qemu_img() + " convert -O raw " + image + " " + raw);
    return raw;
}

bool same_content(const std::string& a, const std::string& b) {
    return run(qemu_img() + " compare " + a + " " + b).status == 0;
}

void check_clean(const std::string& image) {
    auto r = run(qemu_img() + " check " + image);
    INFO(image << "\n" << r.output);
    CHECK(r.status == 0);
}

nlohmann::json info(const std::string& image) {
    auto r = run(qemu_img() + " info -U --output=json " + image);
    REQUIRE(r.status == 0);
    return nlohmann::json::parse(r.output);
}

std::unique_ptr<q::Image> open_rw(const std::string& path, bool open_backing = true) {
    q::OpenOptions o;
    o.writable = true;
    o.open_backing = open_backing;
    return q::Image::open(path, o);
}

/// @brief base (qcow2 or raw) with data in several places, and an overlay that overwrites, zeroes and
/// adds data, partly past the base's clusters.
void make_base_and_overlay(const Scratch& s, const std::string& base_format) {
    const std::string base = s.path("base." + base_format), overlay = s.path("overlay.qcow2");
    sh(qemu_img() + " create -q -f " + base_format + " " + base + " 32M");
    qemu_io_write(base, "-f " + base_format +
                            " -c 'write -P 1 0 3M' -c 'write -P 2 8M 1M' -c 'write -P 3 30M 64k'");
    sh(qemu_img() + " create -q -f qcow2 -b base." + base_format + " -F " + base_format + " " + overlay +
       " 32M");
    qemu_io_write(overlay, "-c 'write -P 4 1M 1M' -c 'write -z 8M 512k' -c 'write -P 5 20M 100k' "
                           "-c 'write -P 6 31M 4k'");
}

} // namespace

TEST_CASE("commit copies the overlay into a qcow2 or raw base, as qemu-img commit does") {
    for (const std::string base_format : {"qcow2", "raw"}) {
        for (bool keep : {false, true}) {
            INFO(base_format << (keep ? " -d" : ""));
            Scratch s;
            make_base_and_overlay(s, base_format);
            const std::string base = s.path("base." + base_format), overlay = s.path("overlay.qcow2");
            const std::string flat = flatten(overlay, s.path("flat.raw"));
            // qemu-img commit on identical copies, for comparison.
            sh("cp " + base + " " + s.path("qbase." + base_format) + " && cp " + overlay + " " +
               s.path("qoverlay.qcow2"));
            sh(qemu_img() + " rebase -u -b qbase." + base_format + " -F " + base_format + " " +
               s.path("qoverlay.qcow2"));
            sh(qemu_img() + " commit -q " + std::string(keep ? "-d " : "") + s.path("qoverlay.qcow2"));

            double last_progress = -1;
            q::CommitOptions options;
            options.empty_overlay = !keep;
            options.progress = [&](double p) {
                last_progress = p;
            };
            q::commit_image(*open_rw(overlay), options);

            CHECK(last_progress == Approx(100.0));
            CHECK(same_content(base, flat));
            CHECK(same_content(overlay, flat));
            CHECK(same_content(base, s.path("qbase." + base_format)));
            CHECK(same_content(overlay, s.path("qoverlay.qcow2")));
            if (base_format == "qcow2")
                check_clean(base);
            check_clean(overlay);
            // Emptied: nothing of the overlay's own left; -d: its clusters stay.
            auto map = run(qemu_img() + " map --output=json " + overlay);
            REQUIRE(map.status == 0);
            bool overlay_allocates = false;
            for (const auto& e : nlohmann::json::parse(map.output))
                overlay_allocates = overlay_allocates || (e["depth"] == 0 && e["present"] == true);
            CHECK(overlay_allocates == keep);
        }
    }
}

TEST_CASE("commit grows a smaller base and refuses a backing file without a recorded format") {
    Scratch s;
    const std::string base = s.path("base.qcow2"), overlay = s.path("overlay.qcow2");
    sh(qemu_img() + " create -q -f qcow2 " + base + " 8M");
    qemu_io_write(base, "-c 'write -P 1 0 1M'");
    sh(qemu_img() + " create -q -f qcow2 -b base.qcow2 -F qcow2 " + overlay + " 16M");
    qemu_io_write(overlay, "-c 'write -P 2 12M 1M'");
    const std::string flat = flatten(overlay, s.path("flat.raw"));
    q::commit_image(*open_rw(overlay), {});
    CHECK(info(base)["virtual-size"] == 16u << 20);
    CHECK(same_content(base, flat));
    check_clean(base);

    // qemu-img 7.2 no longer writes a backing file without a format: hide the extension (an unknown
    // type is ignored) right after the 112-byte v3 header.
    REQUIRE(read_be64(overlay, 112) >> 32 == 0xe2792acaull);
    patch_be32(overlay, 112, 0x0badcafe);
    REQUIRE_FALSE(info(overlay).contains("backing-filename-format"));
    q::OpenOptions o;
    o.writable = true;
    o.require_backing_format = false;
    auto image = q::Image::open(overlay, o);
    CHECK_THROWS_AS(q::commit_image(*image, {}), vmstor::Error);
}

TEST_CASE("safe rebase onto a different base keeps the guest content; qemu-img rebase agrees") {
    for (const std::string new_format : {"qcow2", "raw"}) {
        INFO(new_format);
        Scratch s;
        make_base_and_overlay(s, "qcow2");
        const std::string overlay = s.path("overlay.qcow2"), other = s.path("other." + new_format);
        sh(qemu_img() + " create -q -f " + new_format + " " + other + " 24M");
        qemu_io_write(other, "-f " + new_format + " -c 'write -P 9 0 10M' -c 'write -P 1 0 512k'");
        const std::string flat = flatten(overlay, s.path("flat.raw"));
        sh("cp " + overlay + " " + s.path("qoverlay.qcow2"));
        sh(qemu_img() + " rebase -q -b other." + new_format + " -F " + new_format + " " +
           s.path("qoverlay.qcow2"));

        q::RebaseOptions options;
        options.backing_file = "other." + new_format;
        options.backing_format = new_format;
        q::rebase_image(*open_rw(overlay), options);

        CHECK(same_content(overlay, flat));
        CHECK(same_content(overlay, s.path("qoverlay.qcow2")));
        check_clean(overlay);
        auto j = info(overlay);
        CHECK(j["backing-filename"] == "other." + new_format);
        CHECK(j["backing-filename-format"] == new_format);
    }
}

TEST_CASE("unsafe rebase changes only the backing file name and format") {
    Scratch s;
    make_base_and_overlay(s, "qcow2");
    const std::string overlay = s.path("overlay.qcow2"), other = s.path("other.qcow2");
    sh(qemu_img() + " create -q -f qcow2 " + other + " 32M");
    const auto map_before = run(qemu_img() + " map --output=json -f qcow2 " + overlay).output;
    sh(qemu_img() + " map --output=json " + overlay + " >/dev/null");
    const auto l1_before = info(overlay)["format-specific"];

    q::RebaseOptions options;
    options.backing_file = "other.qcow2";
    options.backing_format = "qcow2";
    options.unsafe = true;
    q::rebase_image(*open_rw(overlay, false), options);

    auto j = info(overlay);
    CHECK(j["backing-filename"] == "other.qcow2");
    CHECK(j["backing-filename-format"] == "qcow2");
    CHECK(j["format-specific"] == l1_before);
    check_clean(overlay);
    // The overlay's own clusters are where they were; only what came from the old base is gone.
    auto own = [&](const std::string& map_json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& e : nlohmann::json::parse(map_json))
            if (e["depth"] == 0 && e["present"] == true)
                out.push_back(e);
        return out;
    };
    CHECK(own(run(qemu_img() + " map --output=json " + overlay).output) == own(map_before));
    CHECK_FALSE(same_content(overlay, flatten(s.path("base.qcow2"), s.path("base.raw"))));
}

TEST_CASE("rebase to no backing file makes the image stand alone with the same content") {
    Scratch s;
    make_base_and_overlay(s, "qcow2");
    const std::string overlay = s.path("overlay.qcow2");
    const std::string flat = flatten(overlay, s.path("flat.raw"));
    q::rebase_image(*open_rw(overlay), q::RebaseOptions{});
    auto j = info(overlay);
    CHECK_FALSE(j.contains("backing-filename"));
    CHECK_FALSE(j.contains("backing-filename-format"));
    sh("rm " + s.path("base.qcow2"));
    CHECK(same_content(overlay, flat));
    check_clean(overlay);
}

TEST_CASE("a chain of three: commit the middle into the base, rebase the top past the middle") {
    Scratch s;
    const std::string base = s.path("base.qcow2"), mid = s.path("mid.qcow2"), top = s.path("top.qcow2");
    sh(qemu_img() + " create -q -f qcow2 " + base + " 16M");
    qemu_io_write(base, "-c 'write -P 1 0 4M'");
    sh(qemu_img() + " create -q -f qcow2 -b base.qcow2 -F qcow2 " + mid + " 16M");
    qemu_io_write(mid, "-c 'write -P 2 1M 2M'");
    sh(qemu_img() + " create -q -f qcow2 -b mid.qcow2 -F qcow2 " + top + " 16M");
    qemu_io_write(top, "-c 'write -P 3 2M 64k' -c 'write -z 3M 64k'");
    const std::string flat_top = flatten(top, s.path("top.raw"));
    const std::string flat_mid = flatten(mid, s.path("mid.raw"));

    // Safe rebase of the top onto the base: what the middle provided moves into the top.
    q::RebaseOptions options;
    options.backing_file = "base.qcow2";
    options.backing_format = "qcow2";
    q::rebase_image(*open_rw(top), options);
    CHECK(same_content(top, flat_top));
    check_clean(top);

    // Commit the middle into the base: the base now holds the middle's content.
    q::commit_image(*open_rw(mid), {});
    CHECK(same_content(base, flat_mid));
    CHECK(same_content(mid, flat_mid));
    check_clean(base);
    check_clean(mid);
    CHECK(same_content(top, flat_top));
}

TEST_CASE("vmstor-img commit and rebase: results, messages and exit codes as qemu-img") {
    Scratch s;
    make_base_and_overlay(s, "qcow2");
    const std::string overlay = s.path("overlay.qcow2"), base = s.path("base.qcow2");
    const std::string flat = flatten(overlay, s.path("flat.raw"));

    auto r = run(vmstor_img() + " commit " + overlay);
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output == "Image committed.\n");
    CHECK(same_content(base, flat));

    r = run(vmstor_img() + " commit " + base);
    CHECK(r.status == 1);
    CHECK(r.output.find("does not have a backing file") != std::string::npos);

    r = run(vmstor_img() + " rebase " + overlay);
    CHECK(r.status == 1);
    r = run(vmstor_img() + " rebase -b missing.qcow2 -F qcow2 " + overlay);
    CHECK(r.status == 1);
    r = run(vmstor_img() + " rebase -b base.qcow2 " + overlay);
    CHECK(r.status == 1);
    CHECK(r.output == "vmstor-img: Could not change the backing file to 'base.qcow2': backing format must be "
                      "specified\n");

    r = run(vmstor_img() + " rebase -b '' " + overlay);
    CHECK(r.status == 0);
    CHECK_FALSE(info(overlay).contains("backing-filename"));
    CHECK(same_content(overlay, flat));

    r = run(vmstor_img() + " rebase -u -b base.qcow2 -F qcow2 " + overlay);
    CHECK(r.status == 0);
    CHECK(info(overlay)["backing-filename"] == "base.qcow2");
    check_clean(overlay);
}
