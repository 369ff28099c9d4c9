#!/usr/bin/env bash
# Build a fully static x86_64 mai-provision with the release profile (which
# is size-optimised in Cargo.toml) and print the binary's path on stdout;
# cargo's progress goes to stderr.
#
#   scripts/build-static.sh                  # the job
#   scripts/build-static.sh --example NAME   # an example (the e2e stand-in)
#
# musl when the Rust target and a musl C compiler (for the bundled SQLite)
# are installed: `rustup target add x86_64-unknown-linux-musl` and Debian's
# `musl-tools`. Otherwise glibc with +crt-static, which needs only gcc and
# libc6-dev, so the Dockerfile's builder stage works on a stock Rust image.
# MAI_PROVISION_STATIC_TARGET=musl|gnu forces one of them.
set -euo pipefail
cd "$(dirname "$0")/.."

musl=x86_64-unknown-linux-musl
gnu=x86_64-unknown-linux-gnu

name=mai-provision
subdir=
cargo_target=(--bin mai-provision)
case "${1-}" in
  --example)
    [ $# -eq 2 ] || { echo "usage: $0 [--example NAME]" >&2; exit 64; }
    name=$2 subdir=examples/ cargo_target=(--example "$2") ;;
  "") ;;
  *) echo "usage: $0 [--example NAME]" >&2; exit 64 ;;
esac

musl_available() {
  command -v rustup >/dev/null 2>&1 &&
    rustup target list --installed 2>/dev/null | grep -qx "$musl" &&
    command -v musl-gcc >/dev/null 2>&1
}

case "${MAI_PROVISION_STATIC_TARGET:-auto}" in
  musl) triple=$musl ;;
  gnu) triple=$gnu ;;
  auto) if musl_available; then triple=$musl; else triple=$gnu; fi ;;
  *) echo "MAI_PROVISION_STATIC_TARGET must be musl, gnu or auto" >&2; exit 64 ;;
esac
echo "building a static $name for $triple" >&2

# +crt-static links the C library in (musl does by default; glibc needs it).
# getrandom_backend="linux_raw": the getrandom(2) system call itself, with no
# /dev/urandom fallback (an empty root has no /dev) and without libc's
# getrandom(): a static musl build with LTO links that one as a null weak
# symbol, and generating a WEBUI_SECRET_KEY then crashed (SIGSEGV) with
# "linux_getrandom". --target keeps these flags off build scripts and proc
# macros, which must stay dynamic host programs.
#
# No unwind tables for the C code (the bundled SQLite, ring's C and
# assembly): nothing ever unwinds through it (the release profile aborts on
# panic, and C does not throw), and they were 150 KB of the binary, which
# keeps it under its size goal with TLS (docs/size-and-performance.md).
cflags_var="CFLAGS_${triple//-/_}"
export "$cflags_var=${!cflags_var:+${!cflags_var} }-fno-asynchronous-unwind-tables -fno-unwind-tables"

# Packed relative relocations (DT_RELR): a static PIE relocates itself at
# start, and its table of plain RELA entries was 140 KB of the binary. RELR
# keeps the same addresses, and so ASLR, in about 2 KB. The linker must know
# the option (binutils 2.38) and the C library's start code must apply it:
# Rust's bundled musl (1.2.5) and glibc from 2.36 do. Anything older builds
# without it.
relr_supported() {
  # Not `ld --help | grep -q`: grep's early exit fails the pipeline
  # (pipefail) whenever ld is still writing.
  case "$(ld --help 2>/dev/null)" in
    *pack-relative-relocs*) ;;
    *) return 1 ;;
  esac
  [ "$triple" = "$musl" ] && return 0
  local glibc
  glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  [ -n "$glibc" ] && [ "$(printf '%s\n' 2.36 "$glibc" | sort -V | head -n 1)" = 2.36 ]
}

rustflags="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_raw\""
if relr_supported; then
  rustflags+=" -C link-arg=-Wl,-z,pack-relative-relocs"
fi
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$rustflags" \
  cargo build --release --locked --target "$triple" "${cargo_target[@]}" >&2

bin="$PWD/target/$triple/release/$subdir$name"
# A static binary that cannot start (say, a C library that ignores the packed
# relocations) must fail here, not in a container.
if [ "$name" = mai-provision ] && ! "$bin" --version >/dev/null; then
  echo "the static $name built for $triple does not start" >&2
  exit 1
fi
echo "$bin"
