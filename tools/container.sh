#!/usr/bin/env bash
# Builds the brainrecon container image from Debian's packages, tests it with no network and
# saves it as an OCI archive that Apptainer turns into a SIF:
#   apptainer build brainrecon.sif oci-archive://brainrecon.oci.tar
#
# Steps (each reuses its result in WORK when it is already there):
#   1. fetch (the only step that uses the network; --offline refuses it):
#      WORK/debs.tgz       Debian 12's packages, `debootstrap --make-tarball` from --mirror
#      WORK/wheelhouse/    the wheel's dependencies for Debian's CPython 3.11 (pip download)
#   2. the root file system, WORK/context/rootfs.tar: `debootstrap --variant=minbase
#      --unpack-tarball`, trimmed
#   3. the image: `buildah build --isolation chroot` of tools/container/Containerfile inside
#      `unshare --net`, with its own storage in WORK/storage
#   4. the tests: every script of tools/container/test.yaml inside the image, with the network
#      cut (checked first: a connection to the mirror must fail)
#   5. the archive: `buildah push IMAGE oci-archive:OUT`
# It also stages WORK/neurodesk: tools/container/build.yaml + test.yaml with their files.
#
# Needs: root (or a user namespace buildah accepts), debootstrap and buildah (apt-get install
# debootstrap buildah), unshare (util-linux), and python3 with pip when a wheel is included.
# Nothing is downloaded at run time: the image holds the binary, the models, and the Python
# package when a wheel is given.
#
# Usage: bash tools/container.sh [--binary PATH] [--wheel PATH | --no-wheel] [--work DIR]
#            [--out FILE] [--mirror URL] [--offline] [--no-test]
#   --wheel PATH   the brainrecon wheel, or a folder holding one (default: `tools/wheel.sh --out
#                  WORK/wheel`, a release build)
#   --binary PATH  a release build of brainrecon (default: the wheel's own binary; with
#                  --no-wheel, cargo build --release --locked -p brainrecon-cli)
#   --no-wheel     no Python package in the image
#   --work DIR     working folder (default: target/container, git-ignored); about 2 GB
#   --out FILE     the OCI archive (default: WORK/brainrecon.oci.tar)
#   --mirror URL   Debian mirror for the fetch step (default: http://deb.debian.org/debian)
#   --offline      fail, naming the file, if step 1 would have to download anything
#   --no-test      skip step 4 (the demo alone takes about 5 minutes on 2 cores)
set -euo pipefail

binary=""
wheel=""
no_wheel=0
work="target/container"
out=""
mirror="http://deb.debian.org/debian"
offline=0
run_tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --wheel) wheel="$2"; shift 2 ;;
    --no-wheel) no_wheel=1; shift ;;
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --offline) offline=1; shift ;;
    --no-test) run_tests=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "error: $*" >&2; exit 2; }
# Paths given are read from the folder the script was started in.
absolute() { [ -z "$1" ] || realpath -m -- "$1"; }
binary=$(absolute "$binary")
wheel=$(absolute "$wheel")
out=$(absolute "$out")
[ "$work" = target/container ] || work=$(absolute "$work")
cd "$(dirname "$0")/.."
repo=$PWD
for tool in debootstrap buildah unshare tar; do
  command -v "$tool" >/dev/null || fail "$tool is required (apt-get install debootstrap buildah)"
done

mkdir -p "$work"
work=$(cd "$work" && pwd)
out="${out:-$work/brainrecon.oci.tar}"
suite=bookworm
# Debian 12's CPython, for which the wheel's dependencies are fetched.
python_version=3.11
started=$(date +%s)
step_started=$started
timings=()
step_done() {
  local now
  now=$(date +%s)
  timings+=("$1: $((now - step_started)) s")
  echo "== $1 done in $((now - step_started)) s"
  step_started=$now
}

# The wheel: given, or built by tools/wheel.sh (release, into WORK/wheel).
if [ "$no_wheel" = 1 ]; then
  wheel=""
elif [ -z "$wheel" ] && [ -f tools/wheel.sh ]; then
  bash tools/wheel.sh --out "$work/wheel"
  wheel="$work/wheel"
fi
if [ -n "$wheel" ] && [ -d "$wheel" ]; then
  found=("$wheel"/brainrecon-*.whl)
  [ -f "${found[0]}" ] || fail "--wheel $wheel: the folder holds no brainrecon-*.whl"
  [ "${#found[@]}" = 1 ] ||
    fail "--wheel $wheel: the folder holds ${#found[@]} brainrecon wheels; name one"
  wheel="${found[0]}"
fi
if [ -n "$wheel" ]; then
  [ -f "$wheel" ] || fail "--wheel $wheel: no such file"
  echo "== the wheel: $wheel"
else
  echo "== no wheel: the image holds no Python package (pass --wheel PATH)"
fi

# The binary: given; else the wheel's own (its .data/scripts/brainrecon), so that the image
# holds one program; else a release build.
mkdir -p "$work/context"
if [ -z "$binary" ] && [ -n "$wheel" ]; then
  command -v python3 >/dev/null || fail "python3 is required to read the wheel $wheel"
  if ! python3 - "$wheel" "$work/context/brainrecon" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    names = [n for n in wheel.namelist() if n.endswith(".data/scripts/brainrecon")]
    if len(names) != 1:
        sys.exit(1)
    with wheel.open(names[0]) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  then
    fail "--wheel $wheel: no brainrecon binary in its .data/scripts"
  fi
  chmod 0755 "$work/context/brainrecon"
  binary="$work/context/brainrecon"
elif [ -z "$binary" ]; then
  command -v cargo >/dev/null ||
    fail "cargo is required to build the binary (or pass --binary PATH)"
  cargo build --release --locked -p brainrecon-cli
  binary="${CARGO_TARGET_DIR:-target}/release/brainrecon"
fi
[ -x "$binary" ] || fail "--binary $binary: not an executable file"
version=$("$binary" --version | awk '{print $2}')
[ -n "$version" ] || fail "--binary $binary: \`--version\` printed no version"
image="localhost/brainrecon:$version"
step_done "binary and wheel (brainrecon $version: $binary)"

# 1. Fetch: Debian's packages and the wheel's dependencies.
debs="$work/debs.tgz"
packages=python3,python3-venv
if [ ! -s "$debs" ]; then
  [ "$offline" = 0 ] || fail "--offline: $debs is missing (run once without --offline to fetch it)"
  rm -rf "$work/debs-staging"
  debootstrap --variant=minbase --include="$packages" --make-tarball="$debs.partial" \
    "$suite" "$work/debs-staging" "$mirror"
  rm -rf "$work/debs-staging"
  mv "$debs.partial" "$debs"
fi
wheelhouse="$work/wheelhouse"
rm -rf "$work/context/wheels"
mkdir -p "$work/context/wheels"
if [ -n "$wheel" ]; then
  wheel_name=$(basename "$wheel")
  if [ ! -f "$wheelhouse/$wheel_name" ]; then
    [ "$offline" = 0 ] || fail "--offline: $wheelhouse lacks the dependencies of $wheel_name"
    command -v python3 >/dev/null ||
      fail "python3 with pip is required to fetch the wheel's dependencies"
    rm -rf "$wheelhouse.partial"
    # Every platform tag Debian 12 (glibc 2.36) runs: pip does not widen a --platform itself.
    platforms=(--platform manylinux2014_x86_64 --platform any)
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
    python3 -m pip download --disable-pip-version-check --dest "$wheelhouse.partial" \
      --only-binary=:all: --implementation cp --python-version "$python_version" \
      --abi "cp${python_version/./}" --abi abi3 --abi none "${platforms[@]}" "$wheel"
    rm -rf "$wheelhouse"
    mv "$wheelhouse.partial" "$wheelhouse"
  fi
  cp "$wheelhouse"/*.whl "$work/context/wheels/"
  # The wheel itself, over the wheelhouse's copy: a rebuilt wheel keeps its file name.
  cp "$wheel" "$work/context/wheels/"
fi
step_done "fetch"

# 2. The root file system: Debian 12, minbase, with python3 and python3-venv.
rootfs_tar="$work/context/rootfs.tar"
if [ ! -s "$rootfs_tar" ] || [ "$debs" -nt "$rootfs_tar" ]; then
  rootfs="$work/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include="$packages" --unpack-tarball="$(realpath "$debs")" \
    "$suite" "$rootfs"
  # The downloaded packages, the package lists, documentation other than the licences, and
  # the build machine's own names, which the runtime provides.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/man "$rootfs"/usr/share/info "$rootfs"/usr/share/locale \
    "$rootfs"/var/log/* "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf
  find "$rootfs"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  mkdir -p "$work/context"
  tar -C "$rootfs" --numeric-owner -cf "$rootfs_tar.partial" .
  mv "$rootfs_tar.partial" "$rootfs_tar"
  rm -rf "$rootfs"
fi
step_done "root file system"

# 3. The image.
context="$work/context"
[ "$binary" -ef "$context/brainrecon" ] || install -m 0755 "$binary" "$context/brainrecon"
rm -rf "$context/models" "$context/recipe"
mkdir -p "$context/models" "$context/recipe"
# The models as the repository holds them (training folders are local and left out).
tar -C models --exclude='.train' -cf - . | tar -C "$context/models" -xf -
cp tools/container/build.yaml tools/container/test.yaml "$context/recipe/"
storage=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
buildah "${storage[@]}" rmi --force "$image" >/dev/null 2>&1 || true
# chroot isolation runs RUN steps without a container runtime; it cannot make a network
# namespace itself, so the whole build runs in one with nothing but loopback.
unshare --net buildah "${storage[@]}" build --isolation chroot --build-arg "VERSION=$version" \
  --tag "$image" --file "$repo/tools/container/Containerfile" "$context"
step_done "image"

# 4. The tests, with no network.
passed=()
skipped=()
failed=()
if [ "$run_tests" = 1 ]; then
  container=$(buildah "${storage[@]}" from --pull-never "$image")
  trap 'buildah "${storage[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT
  in_image() { unshare --net buildah "${storage[@]}" run --isolation chroot "$container" -- "$@"; }
  # No network interface but loopback inside; and, where the mirror's name resolves here, no
  # connection to it.
  interfaces=$(in_image awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") print $1 }' \
    /proc/net/dev)
  [ -z "$interfaces" ] || fail "the tests would run with a network: interfaces $interfaces inside"
  echo "== no network interface inside but loopback"
  mirror_host=$(echo "$mirror" | sed -E 's#^[a-z]+://([^/:]+).*#\1#')
  mirror_ip=$(getent hosts "$mirror_host" | awk '{print $1; exit}' || true)
  if [ -n "$mirror_ip" ]; then
    if in_image bash -c "exec 3<>/dev/tcp/$mirror_ip/80" 2>/dev/null; then
      fail "the tests would run with a network: $mirror_host ($mirror_ip) answered from inside"
    fi
    echo "== no network inside: a connection to $mirror_host ($mirror_ip) fails"
  fi
  with_wheel=$(in_image bash -c 'test -x /opt/brainrecon/venv/bin/python && echo yes || echo no')
  # test.yaml: each "- name:" and the indented block under its "script: |".
  mapfile -t names < <(sed -n -E 's/^  - name: "?([^"]*)"?$/\1/p' tools/container/test.yaml)
  for i in "${!names[@]}"; do
    name=${names[$i]}
    script=$(awk -v want="$((i + 1))" '
      /^  - name:/ { n++; inside = 0; next }
      n == want && /^    script: \|/ { inside = 1; next }
      n == want && inside && /^      / { print substr($0, 7); next }
      n == want && inside && /^$/ { print ""; next }
      inside && /^    [a-z]/ { inside = 0 }' tools/container/test.yaml)
    if [ "${name#Python:}" != "$name" ] && [ "$with_wheel" != yes ]; then
      echo "== SKIPPED (no wheel in the image): $name"
      skipped+=("$name")
      continue
    fi
    echo "== test: $name"
    test_started=$(date +%s)
    if in_image bash -euo pipefail -c "$script"; then
      passed+=("$name ($(( $(date +%s) - test_started )) s)")
    else
      failed+=("$name")
    fi
  done
  step_done "tests"
fi

# 5. The archive.
rm -f "$out"
buildah "${storage[@]}" push "$image" "oci-archive:$out:brainrecon:$version"
step_done "archive"

# The Neurodesk recipe with its files.
neurodesk="$work/neurodesk"
rm -rf "$neurodesk"
mkdir -p "$neurodesk"
cp tools/container/build.yaml tools/container/test.yaml "$neurodesk/"
install -m 0755 "$binary" "$neurodesk/brainrecon"
tar -C "$context/models" -cf "$neurodesk/models.tar" .
[ -z "$wheel" ] || cp "$wheel" "$neurodesk/"

image_bytes=$(buildah "${storage[@]}" images --noheading --format '{{.Size}}' "$image")
echo
echo "brainrecon $version image: $image ($image_bytes unpacked)"
echo "OCI archive: $out ($(du -h "$out" | cut -f1))"
echo "total: $(( $(date +%s) - started )) s"
for t in "${timings[@]}"; do echo "  $t"; done
for t in "${passed[@]}"; do echo "  passed: $t"; done
for t in "${skipped[@]}"; do echo "  skipped: $t"; done
for t in "${failed[@]}"; do echo "  FAILED: $t"; done
echo "Apptainer: apptainer build brainrecon.sif oci-archive://$out"
echo "Neurodesk recipe with its files: $neurodesk"
[ "${#failed[@]}" = 0 ] || exit 1
