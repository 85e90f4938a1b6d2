#!/bin/busybox sh
# /init of the contain test VM (packed into the initramfs by tests/vm/qemu.py).
#
# Boots Debian's kernel, mounts the host's root read-only over 9p with a tmpfs overlay on
# top (so the guest can write, and nothing reaches the host), mounts cgroup2 at
# /sys/fs/cgroup with the controllers enabled at the root (as systemd does on a learner's
# VM), chroots into the merged root, runs the script named by contain.script=PATH on the
# kernel command line and prints "CONTAIN-VM-EXIT=<status>" on the console.

/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /mnt
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
    echo "contain-vm: FATAL: $*"
    echo "CONTAIN-VM-INIT-FAILED"
    poweroff -f
    sleep 5
}

for m in $(cat /modules/order); do
    insmod "/modules/$m.ko" || fail "insmod $m"
done

script=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        contain.script=*) script="${arg#contain.script=}" ;;
    esac
done
[ -n "$script" ] || fail "no contain.script= on the kernel command line"

mkdir -p /mnt/lower /mnt/rw /mnt/root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /mnt/lower \
    || fail "mount 9p hostroot"
mount -t tmpfs -o mode=0755 rw /mnt/rw || fail "mount tmpfs"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work root /mnt/root \
    || fail "mount overlay"

R=/mnt/root
mount -t proc proc $R/proc || fail "mount proc"
mount -t sysfs sysfs $R/sys || fail "mount sysfs"
mount -t devtmpfs devtmpfs $R/dev || fail "mount devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts || fail "mount devpts"
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=0755 run $R/run || fail "mount /run"
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2"
for c in cpu cpuset io memory pids; do
    echo "+$c" > $R/sys/fs/cgroup/cgroup.subtree_control \
        || echo "contain-vm: warning: cannot enable controller $c"
done
ip link set lo up
hostname contain-vm

[ -r "$R$script" ] || fail "script $script not visible in the guest"

# Keep kernel messages (OOM reports, ...) off the console from here on: they would be
# interleaved with the command's output.
echo 1 > /proc/sys/kernel/printk
echo "CONTAIN-VM-BEGIN"
chroot $R /bin/sh "$script" </dev/null >/dev/console 2>&1
rc=$?
printf '\nCONTAIN-VM-EXIT=%d\n' "$rc"
poweroff -f
sleep 5
