#!/usr/bin/python3
"""One client of the load test: `calls` mixed calls on its own bus connection, in its own volume names.

usage: load_client.py BUS_ADDRESS POOL CLIENT_INDEX CALLS SEED
Prints one JSON object: counts per kind of call, the valid calls that failed (with their error) and the bad
calls that did not get the error they must get."""
import json
import random
import sys

import dbus

BUS_NAME = "org.vmstor.Storage1"
ROOT = "/org/vmstor/Storage1"
ERROR = "org.vmstor.Storage1.Error."
MiB = 1 << 20


def encode(name):
    """sd_bus_path_encode's escaping of one object path segment."""
    return "".join(c if c.isascii() and c.isalnum() else "".join(f"_{b:02x}" for b in c.encode()) for c in name)


def sv(**values):
    return dbus.Dictionary(values, signature="sv")


class Client:
    def __init__(self, address, pool, index, seed):
        self.bus = dbus.bus.BusConnection(address)
        self.pool = pool
        self.index = index
        self.random = random.Random(seed)
        self.volumes = {}  # name -> [capacity in MiB, number of snapshots]
        self.serial = 0
        self.counts = {}
        self.failures = []

    def obj(self, path, interface):
        return dbus.Interface(self.bus.get_object(BUS_NAME, path, introspect=False), interface)

    def pool_obj(self):
        return self.obj(f"{ROOT}/pool/{encode(self.pool)}", "org.vmstor.Storage1.Pool")

    def volume_obj(self, name):
        return self.obj(f"{ROOT}/pool/{encode(self.pool)}/volume/{encode(name)}", "org.vmstor.Storage1.Volume")

    # Valid calls ------------------------------------------------------------------------------------
    def list_objects(self):
        self.obj(ROOT, "org.freedesktop.DBus.ObjectManager").GetManagedObjects(timeout=60)

    def read_properties(self):
        self.obj(f"{ROOT}/pool/{encode(self.pool)}", "org.freedesktop.DBus.Properties").GetAll(
            "org.vmstor.Storage1.Pool", timeout=60)

    def create(self):
        self.serial += 1
        name = f"load-{self.index}-{self.serial}.qcow2"
        self.pool_obj().CreateVolume(name, dbus.UInt64(8 * MiB), sv(format="qcow2"), timeout=60)
        self.volumes[name] = [8, 0]

    def resize(self):
        name = self.random.choice(sorted(self.volumes))
        self.volumes[name][0] += 1  # growing is always allowed
        self.volume_obj(name).Resize(dbus.UInt64(self.volumes[name][0] * MiB), sv(), timeout=60)

    def snapshot(self):
        name = self.random.choice(sorted(self.volumes))
        self.volumes[name][1] += 1
        self.volume_obj(name).CreateSnapshot(f"s{self.volumes[name][1]}", sv(), timeout=60)

    def delete(self):
        name = self.random.choice(sorted(self.volumes))
        del self.volumes[name]
        self.volume_obj(name).Delete(sv(), timeout=60)

    # Bad calls: each must answer its named error ------------------------------------------------------
    def bad_calls(self):
        pool = self.pool_obj()
        some = sorted(self.volumes)
        calls = [
            ("InvalidArgument", lambda: pool.CreateVolume("a/b", dbus.UInt64(MiB), sv(), timeout=60)),
            ("InvalidArgument", lambda: pool.CreateVolume("x" * 300, dbus.UInt64(MiB), sv(), timeout=60)),
            ("InvalidArgument", lambda: pool.CreateVolume("ok", dbus.UInt64(MiB), sv(colour="blue"), timeout=60)),
            ("InvalidArgument", lambda: pool.CreateVolume("ok", dbus.UInt64(0), sv(), timeout=60)),
            ("UnknownObject", lambda: self.volume_obj("no-such-volume").Resize(dbus.UInt64(MiB), sv(), timeout=60)),
        ]
        if some:
            target = self.volume_obj(some[0])
            calls += [
                ("InvalidArgument", lambda: target.CreateSnapshot("..", sv(), timeout=60)),
                ("InvalidArgument", lambda: target.Resize(dbus.UInt64(MiB), sv(shrink="yes"), timeout=60)),
                ("AlreadyExists", lambda: pool.CreateVolume(some[0], dbus.UInt64(MiB), sv(), timeout=60)),
            ]
        return calls

    def bad(self):
        expected, call = self.random.choice(self.bad_calls())
        try:
            call()
        except dbus.exceptions.DBusException as e:
            name = e.get_dbus_name()
            if name in (ERROR + expected, "org.freedesktop.DBus.Error." + expected):
                return
            self.failures.append(f"bad call answered {name} ({e.get_dbus_message()}), not {expected}")
            return
        self.failures.append(f"a bad call expecting {expected} succeeded")

    def step(self):
        choices = [("list", 20), ("properties", 20), ("create", 15), ("bad", 15)]
        if self.volumes:
            choices += [("resize", 10), ("snapshot", 10), ("delete", 10)]
        kind = self.random.choices([c[0] for c in choices], [c[1] for c in choices])[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "bad":
            self.bad()
            return
        action = {"list": self.list_objects, "properties": self.read_properties, "create": self.create,
                  "resize": self.resize, "snapshot": self.snapshot, "delete": self.delete}[kind]
        try:
            action()
        except dbus.exceptions.DBusException as e:
            self.failures.append(f"valid {kind} failed: {e.get_dbus_name()}: {e.get_dbus_message()}")


def main():
    address, pool, index, calls, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    client = Client(address, pool, index, f"{seed}-{index}")
    for _ in range(calls):
        client.step()
    print(json.dumps({"counts": client.counts, "failures": client.failures, "volumes": sorted(client.volumes)}))


if __name__ == "__main__":
    main()
