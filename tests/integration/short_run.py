"""A short run through every layer of vmstord (pools, volumes, a job, snapshots, bad input), for the tests
that watch the daemon under valgrind and under the sanitizers."""
import os

import dbus

from harness import VOLUME, pool_path, sv, volume_path

MiB = 1 << 20
SLOW = 120  # D-Bus timeout: an instrumented daemon is many times slower


def exercise_every_layer(test, pool_name="short-run"):
    target = test.create_pool(pool_name)
    pool = test.pool(pool_name)
    path = str(pool.CreateVolume("a.qcow2", dbus.UInt64(16 * MiB), sv(format="qcow2"), timeout=SLOW))
    test.assertEqual(path, volume_path(pool_name, "a.qcow2"))
    volume = test.interface(path, VOLUME)
    volume.Resize(dbus.UInt64(32 * MiB), sv(), timeout=SLOW)
    snapshot = test.interface(str(volume.CreateSnapshot("s1", sv(), timeout=SLOW)), "org.vmstor.Storage1.Snapshot")
    snapshot.Revert(sv(), timeout=SLOW)
    job = str(pool.CloneVolume(dbus.ObjectPath(path), "b.raw", sv(format="raw", wait=True), timeout=3 * SLOW))
    test.assertEqual(test.properties(job, "org.vmstor.Storage1.Job")["State"], "completed")
    test.assertTrue(os.path.exists(os.path.join(target, "b.raw")))
    test.assertDBusError("InvalidArgument", pool.CreateVolume, "../x", dbus.UInt64(MiB), sv())
    test.assertDBusError("InvalidArgument", volume.CreateSnapshot, "s2", sv(colour="blue"))
    test.assertDBusError("NotFound", test.manager().LookupVolumeByPath, "/no/such/volume", sv())
    volume.Info(sv(), timeout=SLOW)
    volume.Check(sv(), timeout=SLOW)
    test.managed_objects()
    snapshot.Delete(sv(), timeout=SLOW)
    test.interface(volume_path(pool_name, "b.raw"), VOLUME).Delete(sv(), timeout=SLOW)
    volume.Delete(sv(), timeout=SLOW)
    test.interface(pool_path(pool_name), "org.vmstor.Storage1.Pool").Stop(sv(), timeout=SLOW)
