# Shared shell helpers for the lab scripts. Sourced, not executed.
# shellcheck shell=bash
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$LAB_DIR/containers.conf"
LAB_RUN=${LAB_RUN:-/run/nebula-lab}
LAB_NETNS="$LAB_RUN/netns"

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing (${2:-install it})"; }

# The first http(s) URI of the host's Debian apt sources.
host_mirror() {
  {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -e "$f" ] || continue
      awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /debian\/?$/) print $i}' "$f"
    done
    { grep -hE '^deb\s+https?://\S+/debian/?\s' /etc/apt/sources.list 2>/dev/null || true; } | awk '{print $2}'
  } | head -n1
}

# Create the lab's private network namespace (idempotent). All container
# networking lives in it: nothing the lab does can reach the host's networks.
netns_up() {
  mkdir -p "$LAB_RUN"
  if ! mountpoint -q "$LAB_NETNS" 2>/dev/null; then
    : >"$LAB_NETNS"
    unshare --net="$LAB_NETNS" true 2>/dev/null || die "podman cannot create a network namespace (unshare --net failed)"
  fi
  nsenter --net="$LAB_NETNS" ip link set lo up
}

netns_down() {
  if mountpoint -q "$LAB_NETNS" 2>/dev/null; then
    umount "$LAB_NETNS" || umount -l "$LAB_NETNS"
  fi
  rm -f "$LAB_NETNS"
}

# Run a command inside the lab namespace.
in_lab() { nsenter --net="$LAB_NETNS" -- "$@"; }

# Install Debian packages into the tree ROOTFS with apt-get in a chroot: the host's network reaches
# the mirror there (the lab's containers never do). Services are kept from starting; /proc and /dev
# are mounted for apt and unmounted again. chroot_apt ROOTFS LOG PACKAGE...  (fails with LOG's tail)
chroot_apt() {
  local rootfs=$1 logf=$2 rc=0
  shift 2
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mount -t proc proc "$rootfs/proc"
  mount --rbind /dev "$rootfs/dev"
  chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"' sh "$@" >"$logf" 2>&1 || rc=$?
  umount -l "$rootfs/dev" "$rootfs/proc"
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  [ "$rc" -eq 0 ] || tail -30 "$logf" >&2
  return "$rc"
}
