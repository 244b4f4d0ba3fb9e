// listing_client: the listing benchmark's two listings from one compiled sd-bus client, so that neither
// side pays for python3-dbus's decoding. Each reply is walked completely (every container entered, every
// value read) the same way on both sides. See README.md beside this file.
//
//   listing_client LIBVIRT_DBUS_BUS_ADDRESS VMSTORD_BUS_ADDRESS [REPEAT]
//
// prints one line per listing with the best time in ms, then the ratio.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <systemd/sd-bus.h>
#include <vector>

namespace {

constexpr std::uint64_t call_timeout_usec = 600ULL * 1000 * 1000;

struct Failure : std::runtime_error {
    Failure(const std::string& what, int error) : std::runtime_error(what + ": " + std::strerror(-error)) {}
};

int check(int result, const std::string& what) {
    if (result < 0)
        throw Failure(what, result);
    return result;
}

struct Bus {
    sd_bus* bus = nullptr;
    explicit Bus(const char* address) {
        check(sd_bus_new(&bus), "sd_bus_new");
        check(sd_bus_set_address(bus, address), "sd_bus_set_address");
        check(sd_bus_set_bus_client(bus, 1), "sd_bus_set_bus_client");
        check(sd_bus_start(bus), std::string("connecting to ") + address);
    }
    ~Bus() { sd_bus_flush_close_unref(bus); }
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;
};

struct Reply {
    sd_bus_message* message = nullptr;
    ~Reply() { sd_bus_message_unref(message); }
};

/// @brief Calls `member`, with a `u` flags argument of 0 when `with_flags` (libvirt-dbus's methods).
void call(sd_bus* bus, const char* destination, const char* path, const char* interface, const char* member,
          bool with_flags, Reply& reply) {
    sd_bus_message* request = nullptr;
    check(sd_bus_message_new_method_call(bus, &request, destination, path, interface, member), member);
    if (with_flags)
        check(sd_bus_message_append(request, "u", std::uint32_t{0}), member);
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_call(bus, request, call_timeout_usec, &error, &reply.message);
    sd_bus_message_unref(request);
    if (r < 0) {
        std::string what = std::string(member) + " (" + (error.message ? error.message : "") + ")";
        sd_bus_error_free(&error);
        throw Failure(what, r);
    }
}

/// @brief Reads every value of the message from the current position; returns how many basic values
/// (and adds string lengths to `bytes`, so that each string is touched like a client would).
std::size_t walk(sd_bus_message* m, std::size_t& bytes) {
    std::size_t values = 0;
    for (;;) {
        char type = 0;
        const char* contents = nullptr;
        if (check(sd_bus_message_peek_type(m, &type, &contents), "peek") == 0)
            return values;
        if (type == SD_BUS_TYPE_ARRAY || type == SD_BUS_TYPE_VARIANT || type == SD_BUS_TYPE_STRUCT ||
            type == SD_BUS_TYPE_DICT_ENTRY) {
            check(sd_bus_message_enter_container(m, type, contents), "enter");
            values += walk(m, bytes);
            check(sd_bus_message_exit_container(m), "exit");
            continue;
        }
        union {
            std::uint64_t number;
            double real;
            const char* text;
            int flag;
            std::uint8_t byte;
        } value{};
        check(sd_bus_message_read_basic(m, type, &value), "read");
        if (type == SD_BUS_TYPE_STRING || type == SD_BUS_TYPE_OBJECT_PATH || type == SD_BUS_TYPE_SIGNATURE)
            bytes += std::strlen(value.text);
        ++values;
    }
}

std::vector<std::string> read_paths(sd_bus_message* m) {
    std::vector<std::string> paths;
    check(sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "o"), "enter ao");
    const char* path = nullptr;
    while (check(sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path), "read o") > 0)
        paths.emplace_back(path);
    check(sd_bus_message_exit_container(m), "exit ao");
    return paths;
}

struct Listing {
    std::size_t objects = 0; ///< pools and volumes seen
    std::size_t values = 0;
    std::size_t bytes = 0;
};

/// @brief libvirt-dbus's sequence: ListStoragePools, then per pool GetInfo, GetXMLDesc and
/// ListStorageVolumes, then per volume GetXMLDesc.
Listing libvirt_dbus_listing(sd_bus* bus) {
    Listing listing;
    Reply pools;
    call(bus, "org.libvirt", "/org/libvirt/QEMU", "org.libvirt.Connect", "ListStoragePools", true, pools);
    for (const std::string& pool : read_paths(pools.message)) {
        ++listing.objects;
        for (const char* member : {"GetInfo", "GetXMLDesc"}) {
            Reply reply;
            call(bus, "org.libvirt", pool.c_str(), "org.libvirt.StoragePool", member,
                 std::strcmp(member, "GetXMLDesc") == 0, reply);
            listing.values += walk(reply.message, listing.bytes);
        }
        Reply volumes;
        call(bus, "org.libvirt", pool.c_str(), "org.libvirt.StoragePool", "ListStorageVolumes", true,
             volumes);
        for (const std::string& volume : read_paths(volumes.message)) {
            ++listing.objects;
            Reply xml;
            call(bus, "org.libvirt", volume.c_str(), "org.libvirt.StorageVol", "GetXMLDesc", true, xml);
            listing.values += walk(xml.message, listing.bytes);
        }
    }
    return listing;
}

/// @brief vmstord's one GetManagedObjects.
Listing vmstord_listing(sd_bus* bus) {
    Listing listing;
    Reply reply;
    call(bus, "org.vmstor.Storage1", "/org/vmstor/Storage1", "org.freedesktop.DBus.ObjectManager",
         "GetManagedObjects", false, reply);
    check(sd_bus_message_enter_container(reply.message, SD_BUS_TYPE_ARRAY, "{oa{sa{sv}}}"), "enter");
    while (
        check(sd_bus_message_enter_container(reply.message, SD_BUS_TYPE_DICT_ENTRY, "oa{sa{sv}}"), "entry")) {
        ++listing.objects;
        listing.values += walk(reply.message, listing.bytes);
        check(sd_bus_message_exit_container(reply.message), "exit entry");
    }
    check(sd_bus_message_exit_container(reply.message), "exit");
    return listing;
}

template <typename List> double best_ms(int repeat, sd_bus* bus, List list, Listing& last) {
    double best = std::numeric_limits<double>::max();
    for (int i = 0; i < repeat; ++i) {
        auto start = std::chrono::steady_clock::now();
        last = list(bus);
        std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
        best = std::min(best, took.count());
    }
    return best;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s LIBVIRT_DBUS_BUS_ADDRESS VMSTORD_BUS_ADDRESS [REPEAT]\n", argv[0]);
        return 2;
    }
    int repeat = argc > 3 ? std::max(1, std::atoi(argv[3])) : 5;
    try {
        Bus peer(argv[1]);
        Bus own(argv[2]);
        Listing peer_listing, own_listing;
        double peer_ms = best_ms(repeat, peer.bus, libvirt_dbus_listing, peer_listing);
        double own_ms = best_ms(repeat, own.bus, vmstord_listing, own_listing);
        std::printf("libvirt-dbus %.2f ms, best of %d: %zu pools and volumes, %zu values, %zu string bytes\n",
                    peer_ms, repeat, peer_listing.objects, peer_listing.values, peer_listing.bytes);
        std::printf("vmstord %.2f ms, best of %d: %zu objects, %zu values, %zu string bytes\n", own_ms,
                    repeat, own_listing.objects, own_listing.values, own_listing.bytes);
        std::printf("ratio %.1f\n", peer_ms / own_ms);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "listing_client: %s\n", e.what());
        return 1;
    }
    return 0;
}
