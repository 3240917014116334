#!/usr/bin/env bash
# Build the verifier module reproducibly with Debian's Rust (offline: apt only).
#
#   wasm-verifier/build.sh                 # build, copy to shared/vettra/data/verifier.wasm
#   wasm-verifier/build.sh --out FILE      # build, write FILE instead
#   wasm-verifier/build.sh --test          # cargo test natively (the shared vectors)
#   wasm-verifier/build.sh --check-tools   # exit 0 when everything needed is installed
#
# What it needs, and installs when missing (as root, through apt):
#   - Debian 12's rustc 1.63 / cargo with the wasm32 standard library, lld, and the crates
#     sha2, hmac (librust-*-dev, a cargo "directory" registry under /usr/share/cargo);
#   - Debian 13's ed25519-dalek 2.1 and the few crates it needs that Debian 12 lacks or has
#     too old, downloaded with apt from the trixie suite into a private directory through a
#     private apt configuration (the system's sources are not touched) and unpacked there.
#     Versions are pinned (TRIXIE_DEBS below) so every machine builds the same bytes.
#
# Reproducible: the crate is copied to a fixed staging path and built with a fixed
# registry path, --remap-path-prefix, no timestamps or debug info, codegen-units=1,
# Cargo.lock --locked. VETTRA_WASM_NO_ED25519=1 builds without Ed25519 (digests only;
# the result then differs from the committed module).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
OUT="$REPO/shared/vettra/data/verifier.wasm"
MODE=build
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --test) MODE=test; shift ;;
    --check-tools) MODE=check; shift ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Fixed paths: they end up in the module's panic-location strings otherwise.
STAGE=/tmp/vettra-wasm-build
# One build at a time in that fixed stage (two test runs on one machine would clobber it).
exec 9>"$STAGE.lock"
flock 9
TOOLS="${VETTRA_WASM_TOOLS:-/var/cache/vettra-wasm}"
REGISTRY="$STAGE/registry"

DEBIAN_PKGS=(rustc cargo libstd-rust-dev-wasm32 lld-14 librust-sha2-dev librust-hmac-dev)
# Debian 13 (trixie) packages: ed25519-dalek and what Debian 12 lacks or has too old.
TRIXIE_DEBS=(
  "librust-ed25519-dalek-dev=2.1.1+4.1.3+20240618+dfsg-9"
  "librust-curve25519-dalek-dev=4.1.3+4.1.3+20240618+dfsg-9"
  "librust-curve25519-dalek-derive-dev=0.1.1+4.1.3+20240618+dfsg-9"
  "librust-ed25519-dev=2.2.3+ds-6"
  "librust-signature-dev=2.2.0+ds-5"
  "librust-zeroize-dev=1.8.1-1"
  "librust-subtle-dev=2.6.1-1"
  "librust-digest-dev=0.10.7-2+b2"
  "librust-const-oid-dev=0.9.6-1"
  "librust-rustc-version-dev=0.4.0-1+b2"
  "librust-semver-dev=1.0.23-1"
  "librust-fiat-crypto-dev=0.2.2-1+b3"
  "librust-cpufeatures-dev=0.2.16-1"
  "librust-libc-dev=0.2.169-1"
  "librust-syn-dev=2.0.98-1"
  "librust-proc-macro2-dev=1.0.92-1+b1"
  "librust-quote-dev=1.0.40-1"
  "librust-unicode-ident-dev=1.0.13-1"
)
WANT_ED25519=1
[ "${VETTRA_WASM_NO_ED25519:-}" = 1 ] && WANT_ED25519=0

say() { echo "build.sh: $*" >&2; }

debian_missing() {
  local missing=()
  for p in "${DEBIAN_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

trixie_ready() { [ -f "$TOOLS/trixie/.complete" ] && [ "$(cat "$TOOLS/trixie/.complete")" = "${TRIXIE_DEBS[*]}" ]; }

if [ "$MODE" = check ]; then
  m="$(debian_missing)"
  [ -z "$m" ] || { echo "missing Debian packages: $m"; exit 1; }
  if [ "$WANT_ED25519" = 1 ] && ! trixie_ready; then echo "missing: Debian 13 Ed25519 crates in $TOOLS/trixie"; exit 1; fi
  exit 0
fi

install_debian() {
  local m
  m="$(debian_missing)"
  [ -z "$m" ] && return 0
  command -v apt-get >/dev/null || { say "no apt-get: cannot install $m"; return 1; }
  [ "$(id -u)" = 0 ] || { say "not root: cannot install $m (run: apt-get install $m)"; return 1; }
  say "installing Debian packages: $m"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $m >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $m >&2; }
}

fetch_trixie() {
  trixie_ready && return 0
  local dir="$TOOLS/trixie"
  rm -rf "$dir" && mkdir -p "$dir"/{etc,lists/partial,cache/archives/partial,debs,root}
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$dir/etc/sources.list"
  : > "$dir/status"
  local opts=(-o "Dir::Etc::SourceList=$dir/etc/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
              -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o "Dir::State::status=$dir/status"
              -o "APT::Architecture=amd64" -o "APT::Sandbox::User=root" -q)
  say "fetching Debian 13 crates for Ed25519 into $dir (private apt configuration)"
  apt-get "${opts[@]}" update >&2 || return 1
  (cd "$dir/debs" && apt-get "${opts[@]}" download "${TRIXIE_DEBS[@]}" >&2) || return 1
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  echo "${TRIXIE_DEBS[*]}" > "$dir/.complete"
}

install_debian || { say "Debian's Rust toolchain is not installable here"; exit 3; }
FEATURES=(--features ed25519)
if [ "$WANT_ED25519" = 1 ]; then
  fetch_trixie || { say "cannot fetch the Debian 13 Ed25519 crates (set VETTRA_WASM_NO_ED25519=1 to build digests only)"; exit 3; }
else
  FEATURES=(--no-default-features)
fi

RUSTC_DIR="$(dirname "$(dpkg -L rustc | grep -m1 '/bin/rustc$')")"
export PATH="$RUSTC_DIR:$PATH"
export CARGO_HOME="$STAGE/cargo-home"
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER
export SOURCE_DATE_EPOCH=0

# Stage: the crate and a registry of symlinks (Debian 12's crates, then Debian 13's).
rm -rf "$STAGE/src" "$REGISTRY" && mkdir -p "$STAGE/src/.cargo" "$REGISTRY" "$CARGO_HOME"
cp -R "$HERE/Cargo.toml" "$HERE/src" "$HERE/tests" "$STAGE/src/"
[ -f "$HERE/Cargo.lock" ] && cp "$HERE/Cargo.lock" "$STAGE/src/"
for d in /usr/share/cargo/registry/*; do ln -sfn "$d" "$REGISTRY/"; done
if [ "$WANT_ED25519" = 1 ]; then
  for d in "$TOOLS"/trixie/root/usr/share/cargo/registry/*; do ln -sfn "$d" "$REGISTRY/"; done
fi
cat > "$STAGE/src/.cargo/config.toml" <<EOF
[source.crates-io]
replace-with = "debian-packages"
[source.debian-packages]
directory = "$REGISTRY"
[net]
offline = true
[build]
rustflags = ["--remap-path-prefix=$STAGE/src=/vettra/wasm-verifier", "--remap-path-prefix=$REGISTRY=/registry", "--remap-path-prefix=$CARGO_HOME=/cargo"]
EOF
cd "$STAGE/src"
LOCKED=--locked
[ "$WANT_ED25519" = 1 ] && [ -f "$HERE/Cargo.lock" ] || LOCKED=
if [ "$MODE" = test ]; then
  VETTRA_REPO="$REPO" cargo test $LOCKED "${FEATURES[@]}" >&2
  exit 0
fi
cargo build $LOCKED "${FEATURES[@]}" --release --target wasm32-unknown-unknown >&2
if [ "$WANT_ED25519" = 1 ] && [ ! -f "$HERE/Cargo.lock" ]; then cp Cargo.lock "$HERE/Cargo.lock"; say "wrote Cargo.lock"; fi
WASM="$STAGE/src/target/wasm32-unknown-unknown/release/vettra_verifier.wasm"
mkdir -p "$(dirname "$OUT")"
cp "$WASM" "$OUT"
# the digest the Python bridge checks before it loads the module
echo "$(sha256sum "$OUT" | cut -d' ' -f1)  $(basename "$OUT")" > "$OUT.sha256"
say "$(rustc --version); $(wc -c < "$OUT") bytes; sha256 $(sha256sum "$OUT" | cut -d' ' -f1) -> $OUT"
