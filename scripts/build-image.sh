#!/usr/bin/env bash
# Build the chipreg container image with podman (or docker), with no network during the build:
# the chipreg wheel and every dependency are built into deploy/container/wheels/ first.
#
#   scripts/build-image.sh [--debootstrap] [TAG]      # TAG default: localhost/chipreg:<version>
#
# --debootstrap: make the base image from Debian's packages (no image registry needed):
# debootstrap bookworm (minbase + python3) and `podman import` it as
# localhost/debian-python3:bookworm. Environment: ENGINE (podman), PIP (.venv/bin/pip),
# BUILD_OPTS (e.g. "--isolation chroot" where the sandbox refuses OCI containers).
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${ENGINE:-podman}
read -r -a pip <<<"${PIP:-.venv/bin/pip}"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
base_args=()
if [ "${1:-}" = "--debootstrap" ]; then
  shift
  base=localhost/debian-python3:bookworm
  if ! "$engine" image exists "$base" 2>/dev/null; then
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$rootfs" \
      http://deb.debian.org/debian
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "$engine" import - "$base"
    rm -rf "$rootfs"
  fi
  base_args=(--build-arg "BASE=$base")
fi
tag=${1:-localhost/chipreg:$version}

wheels=deploy/container/wheels
rm -rf "$wheels" && mkdir -p "$wheels"
"${pip[@]}" wheel --quiet -w "$wheels" . pip
"$engine" build ${BUILD_OPTS:-} --format docker "${base_args[@]}" -t "$tag" -f deploy/container/Containerfile deploy/container
echo "$tag"
