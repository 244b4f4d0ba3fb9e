#!/usr/bin/python3
"""Snapshot schedules through D-Bus against a real libvirtd and qemu-img: a schedule takes snapshots at the
times its systemd calendar names, each as a job of uid 0, and prunes by its policy only the snapshots it
made (a user's stays); it is kept across a restart, and a run missed while vmstord was down runs when it
starts; bad schedules are refused with a named error that says why."""

import datetime
import json
import os
import time

import dbus

from jobs_harness import MiB, VOLUME, JobsTest, main, pump, sv

INVALID = "org.vmstor.Storage1.Error.InvalidArgument"
NOT_SUPPORTED = "org.vmstor.Storage1.Error.NotSupported"
RUN_TIMEOUT = 30.0  # a run every 2 s, on a loaded machine


class ScheduleTests(JobsTest):
    pool_name = "scheduled"

    def create(self, name):
        path = str(self.pool(self.pool_name).CreateVolume(name, dbus.UInt64(16 * MiB), sv(format="qcow2")))
        self.wait_object(path, VOLUME)
        return path

    def set_schedule(self, volume, **schedule):
        self.interface(volume, VOLUME).SetSchedule(sv({k.replace("__", "."): v for k, v in schedule.items()}),
                                                   sv())

    def schedule_of(self, volume):
        return self.properties(volume, VOLUME)["Schedule"]

    def image_snapshots(self, name):
        done = self.qemu_img("snapshot", "-U", "-l", self.pool_file(name))
        return [line.split()[1] for line in done.stdout.splitlines()[2:] if line.strip()]

    def scheduled(self, name):
        return sorted(s for s in self.image_snapshots(name) if s.startswith("auto-"))

    def wait_for(self, what, condition, timeout=RUN_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            pump(0.2)
        self.fail(f"waited {timeout} s for {what}")

    def assert_refused(self, volume, name, words, **schedule):
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.set_schedule(volume, **schedule)
        self.assertEqual(raised.exception.get_dbus_name(), name, raised.exception.get_dbus_message())
        for word in words:
            self.assertIn(word, raised.exception.get_dbus_message())

    def test_a_schedule_snapshots_and_prunes_only_what_it_made(self):
        volume = self.create("nightly.qcow2")
        self.interface(volume, VOLUME).CreateSnapshot("mine", sv())
        self.set_schedule(volume, snapshot__calendar="*:*:0/2",
                          snapshot__keep=dbus.Dictionary({"hourly": dbus.UInt32(1)}, signature="su"))
        self.assertEqual(self.schedule_of(volume), {"snapshot.calendar": "*-*-* *:*:00/2",
                                                    "snapshot.keep": {"hourly": 1}})
        first = self.wait_for("a first scheduled snapshot", lambda: self.scheduled("nightly.qcow2"))
        self.assertEqual(len(first), 1, first)
        # The next run makes a newer one and prunes the first: the policy keeps one per hour, one hour.
        later = self.wait_for("a later scheduled snapshot replacing the first",
                              lambda: (lambda now: now if now and now != first else None)(
                                  self.scheduled("nightly.qcow2")))
        self.assertEqual(len(later), 1, later)
        self.assertIn("mine", self.image_snapshots("nightly.qcow2"))
        self.assert_check_clean(self.pool_file("nightly.qcow2"))
        jobs = [self.job(path) for path in self.list_jobs()]
        scheduled = [job for job in jobs if job["Operation"] == "scheduled-snapshot"
                     and job["Objects"] == [volume]]
        self.assertTrue(scheduled, jobs)
        for job in scheduled:
            self.assertEqual(job["StartedByUID"], 0)
        # Removing the schedule stops it and leaves its snapshots and the user's.
        self.set_schedule(volume)
        self.assertEqual(self.schedule_of(volume), {})
        pump(1.0)  # a run already started may still end
        kept = self.scheduled("nightly.qcow2")
        pump(4.0)
        self.assertEqual(self.scheduled("nightly.qcow2"), kept, "a removed schedule still ran")
        self.assertIn("mine", self.image_snapshots("nightly.qcow2"))

    def test_a_schedule_survives_a_restart_and_runs_what_it_missed(self):
        volume = self.create("missed.qcow2")
        when = datetime.datetime.now().replace(microsecond=0) + datetime.timedelta(seconds=5)
        self.set_schedule(volume, snapshot__calendar=when.strftime("%Y-%m-%d %H:%M:%S"))
        self.env.stop_vmstord()
        while datetime.datetime.now() < when + datetime.timedelta(seconds=1):
            time.sleep(0.2)  # vmstord is down when the run is due
        self.assertEqual(self.scheduled("missed.qcow2"), [])
        self.env.start_vmstord(os.environ["VMSTORD"])
        self.wait_object(volume, VOLUME)
        self.assertEqual(self.schedule_of(volume), {"snapshot.calendar": when.strftime("%Y-%m-%d %H:%M:%S")})
        made = self.wait_for("the missed run after the restart", lambda: self.scheduled("missed.qcow2"))
        self.assertEqual(len(made), 1, made)
        pump(3.0)
        self.assertEqual(self.scheduled("missed.qcow2"), made, "a calendar with one time ran twice")

    def test_vmstorctl_sets_shows_and_removes_a_schedule(self):
        volume = self.create("cli.qcow2")
        done = self.vmstorctl("snapshot-schedule", self.pool_name, "cli.qcow2", "--calendar", "Mon..Fri 02:00",
                              "--keep", "daily=7,weekly=4", "--max-age", "7776000")
        self.assertEqual(done.returncode, 0, done.stderr)
        expected = {"snapshot.calendar": "Mon..Fri *-*-* 02:00:00", "snapshot.keep": {"daily": 7, "weekly": 4},
                    "snapshot.max_age": 7776000}
        self.assertEqual(self.schedule_of(volume), expected)
        shown = self.vmstorctl("--json", "snapshot-schedule", self.pool_name, "cli.qcow2")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertEqual(json.loads(shown.stdout), expected)
        listed = self.vmstorctl("--json", "vol-list", self.pool_name)  # every property, the schedule's too
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(expected, [v.get("Schedule") for v in json.loads(listed.stdout)])
        refused = self.vmstorctl("snapshot-schedule", self.pool_name, "cli.qcow2", "--calendar", "someday")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("someday", refused.stderr)
        done = self.vmstorctl("snapshot-schedule", self.pool_name, "cli.qcow2", "--remove")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.schedule_of(volume), {})

    def test_run_schedule_runs_it_now_and_counts_like_a_run(self):
        volume = self.create("now.qcow2")
        with self.assertRaises(dbus.exceptions.DBusException) as raised:
            self.interface(volume, VOLUME).RunSchedule(sv())
        self.assertEqual(raised.exception.get_dbus_name(), "org.vmstor.Storage1.Error.NotFound")
        self.set_schedule(volume, snapshot__calendar="2099-01-01",  # not before this test ends
                          snapshot__keep=dbus.Dictionary({"daily": dbus.UInt32(1)}, signature="su"))
        job = self.interface(volume, VOLUME).RunSchedule(sv())
        props = self.assert_completed(job)
        self.assertEqual((props["Operation"], props["StartedByUID"]), ("scheduled-snapshot", 0))
        first = self.scheduled("now.qcow2")
        self.assertEqual(len(first), 1, first)
        pump(1.1)  # the next second: another name
        self.assert_completed(self.interface(volume, VOLUME).RunSchedule(sv()))
        second = self.scheduled("now.qcow2")
        self.assertEqual(len(second), 1, second)  # one a day: the first was pruned
        self.assertNotEqual(second, first)

    def test_a_volume_a_guest_writes_is_left_alone(self):
        volume = self.create("guest.qcow2")
        self.set_schedule(volume, snapshot__calendar="*:*:0/2")
        writer = self.start_writer("guest.qcow2")  # QEMU's write lock, as a running guest holds it
        try:
            # Refused at once when vmstord has seen the lock, else the job finds it and fails: never made.
            try:
                job = self.interface(volume, VOLUME).RunSchedule(sv())
                self.assertEqual(self.wait_job(job)["State"], "failed")
            except dbus.exceptions.DBusException as refused:
                self.assertEqual(refused.get_dbus_name(), "org.vmstor.Storage1.Error.Busy")
            pump(5.0)  # two or three runs of the calendar fall due meanwhile
            self.assertEqual(self.scheduled("guest.qcow2"), [], "a scheduled snapshot was written under a guest")
        finally:
            self.stop_writer(writer)
        self.set_schedule(volume)
        self.assert_check_clean(self.pool_file("guest.qcow2"))

    def test_a_deleted_volume_takes_its_schedule_along(self):
        volume = self.create("gone.qcow2")
        self.set_schedule(volume, snapshot__calendar="daily")
        self.interface(volume, VOLUME).Delete(sv())
        again = self.create("gone.qcow2")
        self.assertEqual(self.schedule_of(again), {})

    def test_bad_schedules_are_refused_and_change_nothing(self):
        volume = self.create("refused.qcow2")
        self.assert_refused(volume, INVALID, ["snapshot.calendar", "every full moon"],
                            snapshot__calendar="every full moon")
        self.assert_refused(volume, INVALID, ["snapshot.when", "snapshot.calendar"], snapshot__when="daily")
        self.assert_refused(volume, INVALID, ["fortnightly"], snapshot__calendar="daily",
                            snapshot__keep=dbus.Dictionary({"fortnightly": dbus.UInt32(2)}, signature="su"))
        self.assert_refused(volume, INVALID, ["snapshot.max_age"], snapshot__calendar="daily",
                            snapshot__max_age="a week")
        self.assert_refused(volume, INVALID, ["snapshot.calendar"],
                            snapshot__keep=dbus.Dictionary({"daily": dbus.UInt32(2)}, signature="su"))
        self.assert_refused(volume, NOT_SUPPORTED, ["backup.calendar"], snapshot__calendar="daily",
                            backup__calendar="weekly")
        self.assertEqual(self.schedule_of(volume), {})


if __name__ == "__main__":
    main()
