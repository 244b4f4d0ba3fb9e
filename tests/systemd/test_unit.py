"""The unit under a real systemd: boots a container (systemd-nspawn) whose root is a copy-on-write view
of this host's system (an overlay on a tmpfs, so the host is never changed) with vmstor installed into
it by `meson install --destdir`, runs unit_in_container.sh there as the only job of the boot, and fails
on each of its checks that failed. The host's systemd need not run: systemd is PID 1 of the container.

Usage: test_unit.py BUILDDIR (run as root; the build must be set up with --prefix=/usr, as scripts/test
does, so that the files land where a packaged install puts them and the system bus finds its policy).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT_TIMEOUT = 240  # seconds for the whole boot, the checks and the power-off

CHECK_UNIT = """[Unit]
Description=vmstor unit checks (tests/systemd/test_unit.py)
Requires=dbus.socket libvirtd.socket
After=basic.target dbus.socket libvirtd.socket

[Service]
Type=oneshot
StandardOutput=file:/result/checks
StandardError=inherit
ExecStart=/usr/libexec/vmstor-unit-checks
ExecStopPost=/usr/bin/systemctl --no-block poweroff
"""

CHECK_TARGET = """[Unit]
Description=vmstor unit checks and nothing else
Requires=basic.target vmstor-unit-checks.service
After=basic.target
"""


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def build_prefix(builddir):
    options = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", builddir],
                                        capture_output=True, text=True, check=True).stdout)
    return next(o["value"] for o in options if o["name"] == "prefix")


def main():
    if len(sys.argv) != 2:
        fail("usage: test_unit.py BUILDDIR")
    builddir = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        fail("this test boots a container and needs root")
    for tool in ("systemd-nspawn", "meson"):
        if not shutil.which(tool):
            fail(f"{tool} is not installed (scripts/setup installs it)")
    prefix = build_prefix(builddir)
    if prefix != "/usr":
        fail(f"the build's prefix is {prefix}: set it up with --prefix=/usr (meson configure "
             f"{builddir} -Dprefix=/usr), as scripts/test does, so that the install is a packaged one")

    work = tempfile.mkdtemp(prefix="vmstor-unit.")
    layers, root, result = (os.path.join(work, d) for d in ("layers", "root", "result"))
    mounted = []
    try:
        for d in (layers, root, result):
            os.makedirs(d)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", layers], check=True)
        mounted.append(layers)
        upper, scratch = os.path.join(layers, "upper"), os.path.join(layers, "work")
        os.makedirs(upper)
        os.makedirs(scratch)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir=/,upperdir={upper},workdir={scratch}", root], check=True)
        mounted.append(root)

        subprocess.run(["meson", "install", "-C", builddir, "--no-rebuild", "--quiet", "--destdir", root],
                       check=True, stdout=subprocess.DEVNULL)
        os.makedirs(os.path.join(root, "usr/libexec"), exist_ok=True)
        checks = shutil.copy(os.path.join(HERE, "unit_in_container.sh"),
                             os.path.join(root, "usr/libexec/vmstor-unit-checks"))
        os.chmod(checks, 0o755)
        units = os.path.join(root, "etc/systemd/system")
        with open(os.path.join(units, "vmstor-unit-checks.service"), "w") as f:
            f.write(CHECK_UNIT)
        with open(os.path.join(units, "vmstor-unit-checks.target"), "w") as f:
            f.write(CHECK_TARGET)

        console = os.path.join(work, "console.log")
        with open(console, "wb") as log:
            boot = subprocess.Popen(
                ["systemd-nspawn", f"--directory={root}", "--register=no", "--keep-unit",
                 "--private-network", "--quiet", f"--bind={result}:/result", "--boot", "--",
                 "systemd.unit=vmstor-unit-checks.target"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            try:
                boot.wait(BOOT_TIMEOUT)
            except subprocess.TimeoutExpired:
                boot.terminate()  # nspawn powers the container off on SIGTERM
                try:
                    boot.wait(30)
                except subprocess.TimeoutExpired:
                    boot.kill()
                    boot.wait()
                boot = None
        checks_out = os.path.join(result, "checks")
        lines = open(checks_out).read().splitlines() if os.path.exists(checks_out) else []
        print("\n".join(lines))
        results = [line for line in lines if line.startswith(("ok ", "not ok "))]
        failed = [line for line in results if line.startswith("not ok ")]
        if boot is None or "done" not in lines or failed or not results:
            with open(console, errors="replace") as log:
                print("--- container console (last lines)\n" + "".join(log.readlines()[-40:]))
            if boot is None:
                fail(f"the container did not power off within {BOOT_TIMEOUT} s")
            if not results or "done" not in lines:
                fail("the checks did not run to their end inside the container")
            fail(f"{len(failed)} of {len(results)} checks failed")
        print(f"PASS: {len(results)} checks of vmstord.service under systemd {systemd_version()} as PID 1")
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "--lazy", path], check=False)
        # Never walk into a root still mounted (its lower layer is the host's own).
        if not any(os.path.ismount(path) for path in mounted):
            shutil.rmtree(work, ignore_errors=True)


def systemd_version():
    out = subprocess.run(["systemctl", "--version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


if __name__ == "__main__":
    main()
