#!/usr/bin/python3
"""A stalled client stops nothing but its own job: Downloads into pipes nobody reads, as many as vmstord has
workers and one more, leave every other job free to run; a Download or an Upload whose peer never moves is
cancelled when asked and ends `cancelled`, also when the peer goes away after the Cancel."""

import os

import dbus

from jobs_harness import JOB, MiB, VOLUME, JobsTest, main, pump, sv  # noqa: F401

SIZE = 16 * MiB  # far more than a pipe holds: a download into a pipe nobody reads stalls
END_TIMEOUT = 30.0  # the bound for a job to end that should end at once (a cancel is seen within a second)


class StallsTest(JobsTest):
    pool_name = "stalls"

    @classmethod
    def setUpEnvironment(cls):
        super().setUpEnvironment()
        pool = cls.pool(cls.pool_name)
        cls.source = pool.CreateVolume("source.raw", dbus.UInt64(SIZE), sv(format="raw"))
        cls.small = pool.CreateVolume("small.raw", dbus.UInt64(MiB), sv(format="raw"))

    def volume_obj(self, path):
        return self.interface(str(path), VOLUME)

    def cancel(self, job):
        self.interface(str(job), JOB).Cancel(sv())

    def stalled_download(self):
        """A Download into a pipe whose read end is kept here and never read; returns (job, read end)."""
        read_end, write_end = os.pipe()
        try:
            job = self.volume_obj(self.source).Download(dbus.types.UnixFd(write_end), sv())
        finally:
            os.close(write_end)
        self.addCleanup(os.close, read_end)
        return str(job), read_end

    def test_stalled_downloads_leave_other_jobs_running(self):
        stalled = [self.stalled_download() for _ in range(max(2, os.cpu_count() or 1) + 1)]
        try:
            pump(0.5)
            for job, _ in stalled:
                self.assertEqual(self.job(job)["State"], "running")
            # Queued behind the stalled downloads: it must still run and end.
            wipe = str(self.volume_obj(self.small).Wipe(sv()))
            props = self.wait_job(wipe, timeout=60)
            self.assertEqual(props["State"], "completed", f"a Wipe behind stalled downloads: {props}")
            for job, _ in stalled:
                self.assertEqual(self.job(job)["State"], "running", "a stalled download ended by itself")
        finally:
            for job, _ in stalled:
                self.cancel(job)
        for job, _ in stalled:
            self.assertEqual(self.wait_job(job, timeout=END_TIMEOUT)["State"], "cancelled")

    def test_cancel_of_a_stalled_download_ends_it_cancelled(self):
        job, _ = self.stalled_download()
        pump(0.3)
        self.assertEqual(self.job(job)["State"], "running")
        self.cancel(job)
        props = self.wait_job(job, timeout=END_TIMEOUT)
        self.assertEqual(props["State"], "cancelled", props)

    def test_cancel_then_the_reader_goes_away_ends_it_cancelled(self):
        read_end, write_end = os.pipe()
        try:
            job = str(self.volume_obj(self.source).Download(dbus.types.UnixFd(write_end), sv()))
        finally:
            os.close(write_end)
        pump(0.3)
        self.cancel(job)
        os.close(read_end)  # the download's next write fails: it was cancelled all the same
        props = self.wait_job(job, timeout=END_TIMEOUT)
        self.assertEqual(props["State"], "cancelled", props)

    def test_cancel_of_a_stalled_upload_ends_it_cancelled(self):
        target = self.pool(self.pool_name).CreateVolume("target.raw", dbus.UInt64(MiB), sv(format="raw"))
        job = self.stalled_upload(target)
        pump(0.3)
        self.assertEqual(self.job(job)["State"], "running")
        self.cancel(job)
        props = self.wait_job(job, timeout=END_TIMEOUT)
        self.assertEqual(props["State"], "cancelled", props)


if __name__ == "__main__":
    main()
