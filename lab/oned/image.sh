#!/usr/bin/env bash
# Build the lab's front-end image with real OpenNebula: the lab image
# (lab/image.sh) plus the runtime packages of lab/oned/packages.txt and the
# ready OpenNebula 7.4.0 install prefix from ../shared/fixtures/opennebula
# (extracted here, never committed), laid out as a packaged install would be:
#   /opt/one        the prefix (ONE_LOCATION); /opt/one/etc -> /etc/one and
#                   /opt/one/var -> /var/lib/one, so the roles' paths are oned's
#   /usr/bin/one*   CLI wrappers that set ONE_LOCATION
#   opennebula.service (installed, not enabled: the lab's prepare configures
#                   oned.conf first, extensions/molecule/shared/oned.yml)
# The tag carries a hash of the recipe (this directory), of the base image's tag
# and of the prefix tarball's sha256, so the image is rebuilt only when one of
# them changes. Prints the image reference on stdout.
#   LAB_ONED_PREFIX=/path/to/prefix.tar.xz   another prefix (make oned-from-source)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lab/common.sh
. "$here/../common.sh"

prefix_tar=${LAB_ONED_PREFIX:-${NEBULA_FIXTURES:-$root/../shared/fixtures}/opennebula/opennebula-7.4.0-oned-bookworm-amd64.tar.xz}
[ -r "$prefix_tar" ] || die "OpenNebula prefix tarball not found: $prefix_tar (set LAB_ONED_PREFIX=)"
base=$("$here/../image.sh")
prefix_sum=$(sha256sum "$prefix_tar" | cut -d' ' -f1)
recipe_hash=$({ cat "$here/image.sh" "$here/../common.sh" "$here/packages.txt" "$here/opennebula.service" "$here/oned-wait-ready" "$here/oned-lab-start"
                echo "$base $prefix_sum"; } | sha256sum | cut -c1-12)
image="localhost/nebula-lab-oned:${base##*:}-${recipe_hash}"

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi
mkdir -p "$LAB_RUN"
exec 9>"$LAB_RUN/oned-image.lock"
flock 9
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

t0=$SECONDS
# The base image's file system, changed in a chroot (the host's network reaches
# the mirror; the lab's containers cannot) and committed as the new image.
ctr="nebula-lab-oned-build-$$"
rootfs=""
cleanup() {
  if [ -n "$rootfs" ]; then
    for m in proc dev; do
      if mountpoint -q "$rootfs/$m" 2>/dev/null; then umount -l "$rootfs/$m" || true; fi
    done
  fi
  podman unmount "$ctr" >/dev/null 2>&1 || true
  podman rm -f "$ctr" >/dev/null 2>&1 || true
  rm -f "/var/tmp/$ctr.log"
}
trap cleanup EXIT
podman create --name "$ctr" --network none "$base" >/dev/null
rootfs=$(podman mount "$ctr")
log "building $image from $base in $rootfs"

mapfile -t pkgs < <(grep -Ev '^\s*(#|$)' "$here/packages.txt")
log "installing ${#pkgs[@]} runtime packages"
chroot_apt "$rootfs" "/var/tmp/$ctr.log" "${pkgs[@]}" || die "runtime packages of oned could not be installed"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*
: >"$rootfs/etc/resolv.conf"

log "extracting $(basename "$prefix_tar")"
rm -rf "$rootfs/opt/one"
mkdir -p "$rootfs/opt"
tar -xJf "$prefix_tar" -C "$rootfs/opt"
[ -x "$rootfs/opt/one/bin/oned" ] || die "$prefix_tar has no one/bin/oned"
# The packaged layout: configuration in /etc/one, state and remotes in /var/lib/one.
mkdir -p "$rootfs/etc/one" "$rootfs/var/lib/one"
cp -a "$rootfs/opt/one/etc/." "$rootfs/etc/one/"
cp -a "$rootfs/opt/one/var/." "$rootfs/var/lib/one/"
rm -rf "$rootfs/opt/one/etc" "$rootfs/opt/one/var"
ln -s /etc/one "$rootfs/opt/one/etc"
ln -s /var/lib/one "$rootfs/opt/one/var"
mkdir -p "$rootfs/opt/one/share/lab"
install -m 0755 "$here/oned-wait-ready" "$here/oned-lab-start" "$rootfs/opt/one/share/lab/"
install -m 0644 "$here/opennebula.service" "$rootfs/etc/systemd/system/opennebula.service"
# The CLI finds its Ruby libraries through ONE_LOCATION.
for f in "$rootfs"/opt/one/bin/one*; do
  n=$(basename "$f")
  case $n in oned|onemonitord|*-server) continue ;; esac
  printf '#!/bin/sh\nexport ONE_LOCATION=/opt/one RUBYLIB=/opt/one/lib/ruby\nexec /opt/one/bin/%s "$@"\n' "$n" >"$rootfs/usr/bin/$n"
  chmod 0755 "$rootfs/usr/bin/$n"
done
# oneadmin as OpenNebula's packages create it (uid/gid 9869); the lab's prepare agrees.
chroot "$rootfs" sh -ec '
  getent group oneadmin >/dev/null || groupadd -g 9869 oneadmin
  getent passwd oneadmin >/dev/null || useradd -u 9869 -g 9869 -d /var/lib/one -s /bin/bash -M oneadmin
  mkdir -p /var/lib/one/.one /var/lib/one/.ssh /var/lib/one/datastores /var/lib/one/vms
  chown -R oneadmin:oneadmin /var/lib/one
  chmod 0750 /var/lib/one
  chown -R root:oneadmin /etc/one
  chmod 0750 /etc/one
'
podman unmount "$ctr" >/dev/null
rootfs=""
log "committing $image"
podman commit -q --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' "$ctr" "$image" >/dev/null
log "built $image in $((SECONDS - t0)) s"
echo "$image"
