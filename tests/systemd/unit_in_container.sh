#!/bin/bash
# Runs inside the container that test_unit.py boots: systemd is PID 1 there, with the system bus,
# polkit and libvirtd of the host's packages, and vmstor installed as `meson install` puts it. Starts the
# unit and checks what its hardening must allow and what it must stop. One line per check on stdout:
# "ok NAME" or "not ok NAME: why"; "done" at the end.
set -u
ok() { echo "ok $1"; }
not_ok() { echo "not ok $1: $2"; }
check() { # NAME COMMAND...: ok when the command succeeds, else its output
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$(echo "$out" | tail -5 | tr '\n' ' ')"; fi
}
prop() { systemctl show vmstord.service -p "$1" --value; }

check unit-starts systemctl start vmstord.service
[[ $(prop ActiveState) == active && $(prop Type) == notify ]] && ok unit-active-notify ||
    not_ok unit-active-notify "ActiveState=$(prop ActiveState) Type=$(prop Type)"
pid=$(prop MainPID)
status=$(cat "/proc/$pid/status" 2>/dev/null)
# CHOWN, DAC_OVERRIDE, FOWNER and FSETID: bits 0, 1, 3 and 4.
[[ $status == *$'CapBnd:\t000000000000001b'* ]] && ok capability-bounding-set ||
    not_ok capability-bounding-set "$(grep CapBnd <<<"$status")"
[[ $status == *$'NoNewPrivs:\t1'* ]] && ok no-new-privileges || not_ok no-new-privileges "$(grep NoNewPrivs <<<"$status")"
[[ $status == *$'Seccomp:\t2'* ]] && ok system-call-filter || not_ok system-call-filter "$(grep Seccomp <<<"$status")"
owner=$(busctl status org.vmstor.Storage1 2>/dev/null | sed -n 's/^PID=//p')
[[ $owner == "$pid" ]] && ok bus-name-owned || not_ok bus-name-owned "owner '$owner', MainPID '$pid'"

# Pools in ReadWritePaths work: a volume, a compressed clone (worker threads, zstd, under the filter and
# MemoryDenyWriteExecute), both clean for qemu-img.
images=/var/lib/libvirt/images/unit-test
check pool-create vmstorctl pool-create unit-test dir --target "$images"
check vol-create vmstorctl vol-create unit-test a.qcow2 64M
check vol-clone-compressed vmstorctl vol-clone unit-test a.qcow2 b.qcow2 --format qcow2 --compress \
    --compression-type zstd
check qemu-img-check-a qemu-img check "$images/a.qcow2"
check qemu-img-check-b qemu-img check "$images/b.qcow2"
check vol-list-json bash -c "vmstorctl vol-list unit-test --json | grep -q b.qcow2"

# A pool outside ReadWritePaths: libvirtd makes its directory, vmstord may not write there
# (ProtectSystem=strict), and says so instead of failing oddly.
check pool-create-outside vmstorctl pool-create outside dir --target /srv/vmstor-outside
if out=$(vmstorctl vol-create outside c.qcow2 64M 2>&1); then
    not_ok write-outside-refused "vmstord wrote outside ReadWritePaths: $out"
elif [[ $out == *"Read-only file system"* ]]; then
    ok write-outside-refused
else
    not_ok write-outside-refused "unexpected error: $out"
fi
[[ ! -e /srv/vmstor-outside/c.qcow2 ]] && ok nothing-written-outside || not_ok nothing-written-outside "c.qcow2 exists"
[[ $(prop ActiveState) == active && $(prop NRestarts) == 0 ]] && ok still-running ||
    not_ok still-running "ActiveState=$(prop ActiveState) NRestarts=$(prop NRestarts)"

# A snapshot schedule is a systemd timer here: listed, run by systemd (through Volume.RunSchedule), gone
# when the schedule is removed.
check schedule-set vmstorctl snapshot-schedule unit-test a.qcow2 --calendar '*:*:0/2' --keep hourly=1
timer='vmstor-snapshot-unit\x2dtest-a.qcow2-'
for _ in $(seq 1 40); do systemctl list-timers --all --no-pager | grep -qF "$timer" && break; sleep 0.25; done
systemctl list-timers --all --no-pager | grep -qF "$timer" && ok schedule-timer-listed ||
    not_ok schedule-timer-listed "$(systemctl list-timers --all --no-pager | tr '\n' ' ')"
for _ in $(seq 1 60); do qemu-img snapshot -U -l "$images/a.qcow2" | grep -q ' auto-' && break; sleep 0.5; done
qemu-img snapshot -U -l "$images/a.qcow2" | grep -q ' auto-' && ok schedule-snapshot-made ||
    not_ok schedule-snapshot-made "$(journalctl --no-pager -n 15 | tr '\n' ' ')"
# The timer outlives a stopped vmstord: its next run starts it again through the bus, and runs.
newest() { qemu-img snapshot -U -l "$images/a.qcow2" | awk '/ auto-/ {print $2}' | sort | tail -1; }
check schedule-daemon-stopped systemctl stop vmstord.service
last=$(newest)
for _ in $(seq 1 60); do [[ $(newest) != "$last" && $(prop ActiveState) == active ]] && break; sleep 0.5; done
[[ $(newest) != "$last" && $(prop ActiveState) == active ]] && ok schedule-restarts-vmstord ||
    not_ok schedule-restarts-vmstord "ActiveState=$(prop ActiveState), newest snapshot $(newest) (was $last)"
check schedule-remove vmstorctl snapshot-schedule unit-test a.qcow2 --remove
for _ in $(seq 1 40); do systemctl list-timers --all --no-pager | grep -qF "$timer" || break; sleep 0.25; done
systemctl list-timers --all --no-pager | grep -qF "$timer" && not_ok schedule-timer-gone "still listed" ||
    ok schedule-timer-gone
check schedule-image-clean qemu-img check "$images/a.qcow2"

# The log reaches the journal; SIGTERM stops it cleanly; a call on the bus starts it again.
journalctl -u vmstord.service --no-pager | grep -q "serving org.vmstor.Storage1" && ok journal ||
    not_ok journal "$(journalctl -u vmstord.service --no-pager | tail -3 | tr '\n' ' ')"
check unit-stops systemctl stop vmstord.service
[[ $(prop Result) == success && $(prop ExecMainStatus) == 0 ]] && ok clean-stop ||
    not_ok clean-stop "Result=$(prop Result) ExecMainStatus=$(prop ExecMainStatus)"
check bus-activation busctl call org.vmstor.Storage1 /org/vmstor/Storage1 org.freedesktop.DBus.Properties \
    Get ss org.vmstor.Storage1.Manager Connected
[[ $(prop ActiveState) == active ]] && ok activated-by-bus || not_ok activated-by-bus "$(prop ActiveState)"
check pools-kept-after-restart bash -c "vmstorctl pool-list | grep -q unit-test"
# The bus-activated instance stops cleanly too, and no instance left a crash report in the journal.
check unit-stops-again systemctl stop vmstord.service
[[ $(prop Result) == success && $(prop ExecMainStatus) == 0 ]] && ok clean-stop-again ||
    not_ok clean-stop-again "Result=$(prop Result) ExecMainStatus=$(prop ExecMainStatus)"
broken=$(journalctl -u vmstord.service --no-pager |
    grep -E "ERROR: AddressSanitizer|runtime error:|LeakSanitizer|terminate called" | head -5 || true)
[[ -z $broken ]] && ok no-crash-in-journal || not_ok no-crash-in-journal "$broken"

echo "--- vmstord's journal"
journalctl -u vmstord.service --no-pager | tail -20
echo done
