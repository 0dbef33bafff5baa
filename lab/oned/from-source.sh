#!/usr/bin/env bash
# make oned-from-source: rebuild the OpenNebula 7.4.0 prefix from the source
# tarball in ../shared/fixtures/opennebula (the recipe of its README), so that
# the ready prefix the lab uses is never a black box, then run the oned_lifecycle
# scenario against an image made from the rebuilt prefix. Not part of make test:
# about 1,000 s of CPU.
#   The build runs in a container from the lab image (host network: apt reaches
#   the mirror there, as lab/image.sh's chroot does), its tree in
#   .cache/oned-build (818 MB with objects; removed with make clean).
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
log "building oned from $(basename "$src") in a container from $base (log: $build/build.log)"
# shellcheck disable=SC2016  # runs inside the container
podman run --rm --network host -v "$src:/src.tar.gz:ro" -v "$build:/build" "$base" bash -ec '
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends scons g++ pkg-config libxmlrpc-c++8-dev \
      libcurl4-openssl-dev libsqlite3-dev libssl-dev libxml2-dev zlib1g-dev ruby xz-utils >/dev/null
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
mv "$build/prefix.tar.xz" "$out"
log "built $out in $((SECONDS - t0)) s"
[ "${ONED_BUILD_ONLY:-0}" = 1 ] && exit 0

# The same life-cycle test, against an image made from the rebuilt prefix.
LAB_ONED_PREFIX="$out" exec "$root/lab/molecule" test -s oned_lifecycle
