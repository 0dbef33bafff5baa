#!/usr/bin/env bash
# Build the lab's base image with debootstrap (no registry is reachable) and
# load it with `podman import`. The tag carries a hash of the recipe (this
# script, common.sh and image-packages.txt), so the image is rebuilt only when the recipe
# changes. Prints the image reference on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/common.sh
. "$here/common.sh"

suite=${LAB_SUITE:-bookworm}
recipe_hash=$(cat "$here/image.sh" "$here/image-packages.txt" "$here/common.sh" | sha256sum | cut -c1-12)
image="localhost/nebula-lab:${suite}-${recipe_hash}"

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

# One build at a time: concurrent callers wait, then find the image built.
mkdir -p "$LAB_RUN"
exec 9>"$LAB_RUN/image.lock"
flock 9
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

need debootstrap "apt-get install debootstrap"
mirror=${LAB_MIRROR:-$(host_mirror)}
[ -n "$mirror" ] || die "no Debian mirror found in the host's apt sources; set LAB_MIRROR="

work=$(mktemp -d /var/tmp/nebula-lab-image.XXXXXX)
rootfs="$work/rootfs"
cleanup() {
  for m in proc sys dev/pts dev; do
    if mountpoint -q "$rootfs/$m" 2>/dev/null; then umount -l "$rootfs/$m" || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include=apt-utils,gnupg "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap of $suite from $mirror failed"; }

cat >"$rootfs/etc/apt/sources.list" <<SRC
deb $mirror $suite main
deb $mirror ${suite}-updates main
SRC

mapfile -t pkgs < <(grep -Ev '^\s*(#|$)' "$here/image-packages.txt")
log "installing ${#pkgs[@]} packages"
chroot_apt "$rootfs" "$work/apt.log" "${pkgs[@]}" || die "package installation in the lab image failed"

# shellcheck disable=SC2016  # the script runs inside the chroot, unexpanded here
chroot "$rootfs" sh -c '
  apt-get clean
  rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d /etc/ssh/ssh_host_*
  # Host keys are generated per container at first boot.
  systemctl enable ssh.service >/dev/null 2>&1 || true
  # Units that cannot work in a container, or that roles start themselves.
  for u in nfs-kernel-server.service nfs-ganesha.service nfs-server.service rpc-statd.service \
           libvirtd.service virtlogd.service virtlockd.service lvm2-lvmpolld.socket \
           lvmlockd.service dlm.service corosync.service systemd-udevd.service; do
    systemctl disable "$u" >/dev/null 2>&1 || true
  done
  for u in systemd-remount-fs.service systemd-udev-trigger.service getty@tty1.service \
           console-getty.service systemd-logind.service; do
    systemctl mask "$u" >/dev/null 2>&1 || true
  done
  printf "[Unit]\nDescription=Regenerate ssh host keys\nBefore=ssh.service\nConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n[Install]\nWantedBy=multi-user.target\n" \
    > /etc/systemd/system/ssh-hostkeys.service
  systemctl enable ssh-hostkeys.service >/dev/null 2>&1
'
: >"$rootfs/etc/resolv.conf"
echo "nebula-lab" >"$rootfs/etc/hostname"

log "importing $image"
tar -C "$rootfs" --numeric-owner -c . \
  | podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' - "$image" >/dev/null
echo "$image"
