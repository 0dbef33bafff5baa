#!/usr/bin/env bash
# make oned-from-source: rebuild the OpenNebula 7.4.0 prefix from the source
# tarball in ../shared/fixtures/opennebula (the recipe of its README), so that
# the ready prefix the lab uses is never a black box, then run the oned_lifecycle
# scenario against an image made from the rebuilt prefix. Not part of make test:
# about 1,000 s of CPU.
#   The build runs in a chroot of a container file system from the lab image (apt
#   reaches the mirror from the host's network, as in lab/image.sh; no container
#   is given a network), its tree in .cache/oned-build (818 MB with objects;
#   removed with make clean).
#   ONED_BUILD_ONLY=1 stops after the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lab/common.sh
. "$here/../common.sh"

src=${ONED_SOURCE:-${NEBULA_FIXTURES:-$root/../shared/fixtures}/opennebula/opennebula-7.4.0-src.tar.gz}
[ -r "$src" ] || die "OpenNebula source tarball not found: $src (set ONED_SOURCE=)"
build="$root/.cache/oned-build"
out="$build/opennebula-7.4.0-oned-from-source.tar.xz"
mkdir -p "$build"
base=$("$root/lab/image.sh")

t0=$SECONDS
# The build runs in a chroot of a container's file system from the lab image: apt reaches the mirror
# from the host's network (as lab/image.sh's chroot does); no container gets a network.
ctr="nebula-oned-build-$$"
rootfs=""
cleanup() {
  if [ -n "$rootfs" ]; then
    for m in build src.tar.gz proc dev; do
      if mountpoint -q "$rootfs/$m" 2>/dev/null; then umount -l "$rootfs/$m" || true; fi
    done
  fi
  podman unmount "$ctr" >/dev/null 2>&1 || true
  podman rm -f "$ctr" >/dev/null 2>&1 || true
}
trap cleanup EXIT
podman create --name "$ctr" --network none "$base" >/dev/null
rootfs=$(podman mount "$ctr")
log "building oned from $(basename "$src") in a chroot of $base (log: $build/build.log)"
chroot_apt "$rootfs" "$build/apt.log" scons g++ pkg-config libxmlrpc-c++8-dev libcurl4-openssl-dev \
  libsqlite3-dev libssl-dev libxml2-dev zlib1g-dev ruby xz-utils || die "the build packages could not be installed"
mkdir -p "$rootfs/build"
: >"$rootfs/src.tar.gz"
mount --bind "$build" "$rootfs/build"
mount --bind -o ro "$src" "$rootfs/src.tar.gz"
mount -t proc proc "$rootfs/proc"
# shellcheck disable=SC2016  # runs inside the chroot
chroot "$rootfs" /usr/bin/env LC_ALL=C bash -ec '
  rm -rf /build/opennebula-7.4.0 /build/one
  tar -xzf /src.tar.gz -C /build
  cd /build/opennebula-7.4.0
  scons -j"$(nproc)" grpc=no svncterm=no mysql=no sqlite=yes systemd=no fireedge=no \
      rubygems=no parsers=no context=no
  # ~110 "cannot stat" lines (gRPC stubs, vendored libs, man pages) are expected
  ./install.sh -d /build/one -u root -g root 2>&1 | grep -vc "cannot stat" || true
  mkdir -p /build/one/share/gems
  # Let Ruby see Debian'"'"'s ruby-* gems as well as the prefix'"'"'s (empty) gem dir.
  sed -i "s/^Gem.use_paths(File.realpath(GEMS_LOCATION))\$/Gem.use_paths(File.realpath(GEMS_LOCATION), Gem.default_path)/" \
      /build/one/lib/ruby/load_opennebula_paths.rb
  grep -q "Gem.default_path" /build/one/lib/ruby/load_opennebula_paths.rb
  strip /build/one/bin/oned /build/one/bin/onemonitord /build/one/lib/*/place 2>/dev/null || true
  tar -C /build -cJf /build/prefix.tar.xz one
  rm -rf /build/one
' >"$build/build.log" 2>&1 || { tail -30 "$build/build.log" >&2; die "building oned from source failed"; }
cleanup
rootfs=""
trap - EXIT
mv "$build/prefix.tar.xz" "$out"
log "built $out in $((SECONDS - t0)) s"
[ "${ONED_BUILD_ONLY:-0}" = 1 ] && exit 0

# The same life-cycle test, against an image made from the rebuilt prefix.
LAB_ONED_PREFIX="$out" exec "$root/lab/molecule" test -s oned_lifecycle
