#!/usr/bin/python3
"""Listing benchmark: one full listing of every pool and volume with its properties, through vmstord's
GetManagedObjects and through libvirt-dbus, on the same private libvirtd; then vmstord's resident memory
with 1,000 and with 10,000 volumes. See README.md beside this file."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import dbus
import libvirt

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "scripts"))
from private_env import EnvError, PrivateEnv  # noqa: E402

VOLUME_INTERFACE = "org.vmstor.Storage1.Volume"
POOL_INTERFACE = "org.vmstor.Storage1.Pool"
CALL_TIMEOUT = 600  # seconds for one D-Bus call; libvirt-dbus is slow by design of this comparison
SETTLE_TIMEOUT = 300.0  # seconds for vmstord to show every volume after a refresh


def make_pools(env, conn, pools):
    for i in range(pools):
        name = f"bench{i:02d}"
        target = os.path.join(env.pools_dir, name)
        pool = conn.storagePoolDefineXML(
            f"<pool type='dir'><name>{name}</name><target><path>{target}</path></target></pool>", 0)
        pool.build(0)
        pool.create(0)


def add_volumes(env, conn, template, per_pool, first):
    """Copies the qcow2 template into every pool as volumes first..first+per_pool-1, then refreshes:
    much faster than one vol-create per volume, and libvirt sees real qcow2 images."""
    for pool in conn.listAllStoragePools(0):
        target = os.path.join(env.pools_dir, pool.name())
        for n in range(first, first + per_pool):
            path = os.path.join(target, f"vol{n:05d}.qcow2")
            shutil.copyfile(template, path)
            os.chown(path, env.user.pw_uid, env.user.pw_gid)
        pool.refresh(0)


def count_volumes(objects):
    return sum(1 for interfaces in objects.values() if VOLUME_INTERFACE in interfaces)


def vmstord_listing(bus):
    root = bus.get_object("org.vmstor.Storage1", "/org/vmstor/Storage1", introspect=False)
    return root.GetManagedObjects(dbus_interface="org.freedesktop.DBus.ObjectManager", timeout=CALL_TIMEOUT)


def busctl_listing(address):
    """The same GetManagedObjects from a C client (sd-bus) that parses the reply but prints nothing."""
    subprocess.run(["busctl", f"--address={address}", "call", "--quiet", "--timeout=600", "org.vmstor.Storage1",
                    "/org/vmstor/Storage1", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"], check=True)


def libvirt_dbus_listing(bus):
    """The same listing through libvirt-dbus: pools, then per pool info, XML and volumes, then per volume XML."""
    flags = dbus.UInt32(0)
    connect = bus.get_object("org.libvirt", "/org/libvirt/QEMU", introspect=False)
    listing = {}
    for pool_path in connect.ListStoragePools(flags, dbus_interface="org.libvirt.Connect", timeout=CALL_TIMEOUT):
        pool = dbus.Interface(bus.get_object("org.libvirt", pool_path, introspect=False), "org.libvirt.StoragePool")
        info = pool.GetInfo(timeout=CALL_TIMEOUT)
        xml = pool.GetXMLDesc(flags, timeout=CALL_TIMEOUT)
        volumes = {}
        for volume_path in pool.ListStorageVolumes(flags, timeout=CALL_TIMEOUT):
            volume = bus.get_object("org.libvirt", volume_path, introspect=False)
            volumes[volume_path] = volume.GetXMLDesc(flags, dbus_interface="org.libvirt.StorageVol",
                                                     timeout=CALL_TIMEOUT)
        listing[pool_path] = (info, xml, volumes)
    return listing


def compiled_listings(client, env, repeat):
    """Both listings again from one compiled sd-bus client (listing_client.cpp), which reads every value of
    every reply the same way on both sides: the ratio without python3-dbus's decoding."""
    result = subprocess.run([client, env.session_bus_address, env.bus_address, str(repeat)],
                            capture_output=True, text=True, timeout=CALL_TIMEOUT * 2)
    if result.returncode != 0:
        raise RuntimeError(f"listing_client failed: {result.stderr.strip()}")
    lines = result.stdout.strip().splitlines()
    print("the same listings from a compiled sd-bus client (listing_client):")
    for line in lines[:-1]:
        print(f"  {line}")
    print(f"ratio (sd-bus client): vmstord is {float(lines[-1].split()[1]):.1f} times faster (goal: at least 20)")


def best_of(repeat, listing, bus):
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = listing(bus)
        times.append(time.perf_counter() - start)
    return min(times), result


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid):
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_volumes(bus, expected):
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen = -1
    while time.monotonic() < deadline:
        seen = count_volumes(vmstord_listing(bus))
        if seen == expected:
            return
        time.sleep(0.5)
    raise RuntimeError(f"vmstord shows {seen} volumes, libvirt has {expected}, after {SETTLE_TIMEOUT:.0f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vmstord", default=os.path.join(SOURCE_ROOT, "build", "daemon", "vmstord"))
    parser.add_argument("--client", default=os.path.join(SOURCE_ROOT, "build", "bench", "listing_client"),
                        help="the compiled sd-bus client that makes both listings (skipped when not built)")
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--volumes", type=int, default=100, help="qcow2 volumes per pool for the timing")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-volumes", type=int, default=10000,
                        help="total volumes for the second memory reading (0 to skip)")
    args = parser.parse_args()

    env = PrivateEnv(tempfile.mkdtemp(prefix="vmstor-bench."), SOURCE_ROOT)
    try:
        env.start()
        conn = libvirt.open(env.uri)
        template = env.path("template.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", template, "1G"], check=True)
        make_pools(env, conn, args.pools)
        add_volumes(env, conn, template, args.volumes, 0)
        total = args.pools * args.volumes
        print(f"{args.pools} pools of {args.volumes} qcow2 volumes ({total} volumes) on a private libvirtd "
              f"{libvirt.getVersion() // 1000000}.{libvirt.getVersion() // 1000 % 1000}")

        env.start_libvirt_dbus()
        session = dbus.bus.BusConnection(env.session_bus_address)
        peer_time, peer = best_of(args.repeat, libvirt_dbus_listing, session)
        peer_volumes = sum(len(volumes) for _, _, volumes in peer.values())
        print(f"libvirt-dbus  (ListStoragePools, GetInfo, GetXMLDesc, ListStorageVolumes, per volume GetXMLDesc): "
              f"{peer_time * 1000:9.1f} ms, best of {args.repeat}, {len(peer)} pools, {peer_volumes} volumes")

        if not os.access(args.vmstord, os.X_OK):
            print(f"vmstord: not measured, {args.vmstord} is not built", file=sys.stderr)
            return 1
        env.start_vmstord(args.vmstord)
        bus = dbus.bus.BusConnection(env.bus_address)
        wait_for_volumes(bus, total)
        cpu_before, client_before = cpu_seconds(env.vmstord_pid), time.process_time()
        own_time, objects = best_of(args.repeat, vmstord_listing, bus)
        own_cpu = (cpu_seconds(env.vmstord_pid) - cpu_before) / args.repeat
        client_cpu = (time.process_time() - client_before) / args.repeat
        pools = sum(1 for interfaces in objects.values() if POOL_INTERFACE in interfaces)
        print(f"vmstord       (GetManagedObjects): {own_time * 1000:9.1f} ms, best of {args.repeat}, "
              f"{pools} pools, {count_volumes(objects)} volumes")
        print(f"  CPU per call: vmstord {own_cpu * 1000:.0f} ms, this python3-dbus client {client_cpu * 1000:.0f} ms")
        print(f"ratio: vmstord is {peer_time / own_time:.1f} times faster (goal: at least 20)")
        if shutil.which("busctl"):
            busctl_time, _ = best_of(args.repeat, busctl_listing, env.bus_address)
            print(f"  the same GetManagedObjects from busctl (a C client, one process per call): "
                  f"{busctl_time * 1000:.1f} ms, best of {args.repeat}")
        if os.access(args.client, os.X_OK):
            compiled_listings(args.client, env, args.repeat)
        else:
            print(f"  (the compiled client {args.client} is not built: no sd-bus comparison)")
        print(f"vmstord VmRSS with {total} volumes: {vmrss_kib(env.vmstord_pid) / 1024:.1f} MiB")

        if args.memory_volumes > total:
            per_pool = (args.memory_volumes - total + args.pools - 1) // args.pools
            add_volumes(env, conn, template, per_pool, args.volumes)
            total += per_pool * args.pools
            wait_for_volumes(bus, total)
            big_time, _ = best_of(1, vmstord_listing, bus)
            print(f"vmstord VmRSS with {total} volumes: {vmrss_kib(env.vmstord_pid) / 1024:.1f} MiB "
                  f"(goal: under 100 MiB); GetManagedObjects then takes {big_time * 1000:.1f} ms")
        conn.close()
        return 0
    except (EnvError, RuntimeError, dbus.exceptions.DBusException, libvirt.libvirtError) as e:
        print(f"listing_bench: {e}", file=sys.stderr)
        return 1
    finally:
        env.remove()


if __name__ == "__main__":
    sys.exit(main())
