#!/usr/bin/env bash
# Local stand-ins for the official base images the Dockerfiles name, for machines that can
# reach Debian's archive but no container registry. Each is made only if podman does not
# have it yet, so the next run on the same machine reuses it.
#   debian:SUITE-slim  debootstrap --variant=minbase of that suite, as the official image is
#                      made (theirs also drops documentation; ours keeps it), plus this
#                      machine's own certificate authorities from
#                      /usr/local/share/ca-certificates, which the image's ca-certificates
#                      package trusts once installed: a host behind a TLS-inspecting proxy
#                      reaches the package registries only through them
#   rust:1.95-slim     this machine's Rust 1.95 toolchain where the official image keeps
#                      its own (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo);
#                      the Dockerfile copies only those two directories from it
#   bash tests/base-images.sh [SUITE ...] [rust]     (default: bookworm sid rust)
set -euo pipefail

mirror=${TOKEN_SYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rust_version=1.95
work=$(mktemp -d /var/tmp/token_sync-bases.XXXXXX)
trap 'rm -rf "$work"' EXIT

[ $# -gt 0 ] || set -- bookworm sid rust
suites=()
want_rust=0
for name in "$@"; do
  if [ "$name" = rust ]; then want_rust=1; else suites+=("$name"); fi
done

debian_image() {
  local suite=$1 root=$work/$1
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/$suite.log" 2>&1 || {
    tail -n 20 "$work/$suite.log" >&2
    return 1
  }
  printf 'deb %s %s main\n' "$mirror" "$suite" >"$root/etc/apt/sources.list"
  if [ "$suite" = sid ]; then
    # The archive's unstable Release file is not always re-signed in time; a stale
    # Valid-Until would stop every apt-get update in the image.
    echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99token-sync-stand-in"
  fi
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  tar -C "$root" -c . | podman import -q --change 'CMD ["bash"]' - "debian:$suite-slim" >/dev/null
  rm -rf "$root"
}

rust_image() {
  local toolchain stage=$work/rust
  toolchain=$(rustup run "$rust_version.0" rustc --print sysroot)
  mkdir -p "$stage/usr/local/rustup/toolchains/$rust_version.0-x86_64-unknown-linux-gnu" "$stage/usr/local/cargo/bin"
  tar -C "$toolchain" --exclude=./share/doc -c . |
    tar -C "$stage/usr/local/rustup/toolchains/$rust_version.0-x86_64-unknown-linux-gnu" -x
  printf 'version = "12"\ndefault_toolchain = "%s.0-x86_64-unknown-linux-gnu"\nprofile = "minimal"\n' \
    "$rust_version" >"$stage/usr/local/rustup/settings.toml"
  for proxy in rustup cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
    cp "$(command -v rustup)" "$stage/usr/local/cargo/bin/$proxy"
  done
  tar -C "$stage" -c . | podman import -q \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "rust:$rust_version-slim" >/dev/null
}

pids=()
for suite in "${suites[@]}"; do
  if ! podman image exists "debian:$suite-slim"; then
    echo "base-images: debian:$suite-slim (debootstrap)"
    debian_image "$suite" &
    pids+=($!)
  fi
done
if [ "$want_rust" = 1 ] && ! podman image exists "rust:$rust_version-slim"; then
  echo "base-images: rust:$rust_version-slim (this machine's toolchain)"
  rust_image
fi
for pid in "${pids[@]}"; do wait "$pid"; done
