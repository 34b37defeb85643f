#!/usr/bin/env bash
# Build the netdiag image where no container registry is reachable and the Docker engine's own
# network has no way out, but this host can reach Debian's archive and PyPI.
#
#   sudo image/build-offline.sh [-t TAG] [-a "PACKAGE ..."]   (DOCKER_HOST picks the engine)
#
# -a adds Debian packages to image/packages.txt's, e.g. -a "tshark termshark swaks" (left out by
# default for their size; image/README.md).
#
# On the host it makes (and caches) what `docker build` would otherwise download:
#   1. a Debian root file system (debootstrap --variant=minbase), imported as the base image;
#   2. the .debs of image/packages.txt, downloaded inside that root file system (so they fit it);
#   3. wheels of netdiag's Python dependencies and of image/requirements-tools.txt (for the
#      base's Python 3.11), and netdiag's own.
# Then it builds image/Dockerfile with OFFLINE=1 from a copy of the build context that holds
# them under image/offline/. The cache (default /var/cache/netdiag-image, or
# $NETDIAG_IMAGE_CACHE) is keyed by the inputs; delete it to pick up Debian security updates.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${NETDIAG_IMAGE_CACHE:-/var/cache/netdiag-image}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PYTHON_VERSION=3.11  # bookworm's python3: the wheels must fit it, not this host's Python
DOCKER=${DOCKER:-docker}
PYTHON=${PYTHON:-python3}
TAG=netdiag:local
EXTRA_PACKAGES=
RECIPE=1  # bump when the way the base is made changes, to invalidate cached bases

usage() { echo "usage: $0 [-t TAG] [-a \"PACKAGE ...\"]" >&2; exit 2; }
fail() { echo "build-offline: $*" >&2; exit 1; }
step() { echo "build-offline: $*" >&2; }

while getopts "t:a:h" opt; do
  case $opt in
    t) TAG=$OPTARG ;;
    a) EXTRA_PACKAGES=$OPTARG ;;
    *) usage ;;
  esac
done

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || fail "debootstrap is missing (apt-get install debootstrap)"
command -v "$DOCKER" >/dev/null || fail "$DOCKER is missing (apt-get install docker.io)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || fail "$PYTHON has no pip (set PYTHON=...)"
"$DOCKER" version >/dev/null 2>&1 \
  || fail "no Docker engine answers at ${DOCKER_HOST:-the default socket}"

arch=$(dpkg --print-architecture)
pyarch=$(uname -m)
hash_of() { sha256sum | cut -c1-16; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9  # one build at a time per cache

# --- 1. base root file system --------------------------------------------------------------

base_key=$(echo "$RECIPE $SUITE $arch $MIRROR $SECURITY_MIRROR" | hash_of)
base_dir=$CACHE/base-$SUITE-$base_key
base_tar=$base_dir/rootfs.tar
base_image=netdiag-base:$SUITE-$base_key

make_base() {
  local rootfs=$base_dir/rootfs
  rm -rf "$base_dir"
  mkdir -p "$base_dir"
  step "debootstrap $SUITE (minbase) into $rootfs"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$base_dir/debootstrap.log" 2>&1 \
    || fail "debootstrap failed; see $base_dir/debootstrap.log"
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
  step "applying $SUITE updates"
  chroot "$rootfs" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -y -qq upgrade \
    >>"$base_dir/debootstrap.log" 2>&1 \
    || fail "apt-get upgrade failed; see $base_dir/debootstrap.log"
  chroot "$rootfs" apt-get clean
  # As Debian's slim images: no documentation, manual pages or translations.
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
         "$rootfs"/usr/share/locale/*
  # The engine provides resolv.conf, hostname and hosts to every container: keep the host's out.
  tar -C "$rootfs" --numeric-owner --exclude='./var/lib/apt/lists/*' \
      --exclude='./var/cache/apt/*.bin' --exclude=./etc/resolv.conf --exclude=./etc/hostname \
      --exclude=./etc/hosts -cf "$base_tar.part" .
  mv "$base_tar.part" "$base_tar"
}

[ -f "$base_tar" ] && [ -d "$base_dir/rootfs" ] || make_base
if ! "$DOCKER" image inspect "$base_image" >/dev/null 2>&1; then
  step "importing the base image $base_image"
  "$DOCKER" import -c 'CMD ["bash"]' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$base_tar" "$base_image" >/dev/null
fi

# --- 2. Debian packages ----------------------------------------------------------------------

packages="$(grep -v '^#' "$REPO/image/packages.txt" | tr '\n' ' ')$EXTRA_PACKAGES"
debs_key=$( (echo "$base_key"; echo "$packages") | hash_of)
debs_dir=$CACHE/debs-$debs_key
if [ ! -d "$debs_dir" ]; then
  step "downloading packages: $packages"
  rootfs=$base_dir/rootfs
  chroot "$rootfs" apt-get clean
  chroot "$rootfs" apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive chroot "$rootfs" \
    apt-get install -y -qq --download-only --no-install-recommends $packages >/dev/null
  mkdir -p "$debs_dir.part"
  mv "$rootfs"/var/cache/apt/archives/*.deb "$debs_dir.part/"
  mv "$debs_dir.part" "$debs_dir"
fi

# --- 3. Python wheels -----------------------------------------------------------------------

requirements=$("$PYTHON" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
EOF
)
requirements+=$'\n'$(grep -v '^#' "$REPO/image/requirements-tools.txt")
wheels_key=$( (echo "$PYTHON_VERSION $pyarch"; echo "$requirements") | hash_of)
wheels_dir=$CACHE/wheels-$wheels_key
if [ ! -d "$wheels_dir" ]; then
  step "downloading wheels for Python $PYTHON_VERSION"
  platforms=()
  for glibc in 2_36 2_35 2_34 2_28 2_17 2_12 2_5; do
    platforms+=(--platform "manylinux_${glibc}_$pyarch")
  done
  platforms+=(--platform "manylinux2014_$pyarch" --platform "manylinux2010_$pyarch"
              --platform "manylinux1_$pyarch")
  echo "$requirements" >"$CACHE/requirements-$wheels_key.txt"
  "$PYTHON" -m pip download -q --dest "$wheels_dir.part" --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --implementation cp "${platforms[@]}" \
    -r "$CACHE/requirements-$wheels_key.txt" 2> >(grep -v 'is ignored' >&2)
  mv "$wheels_dir.part" "$wheels_dir"
fi

# --- 4. the build context and the build -----------------------------------------------------

context=$(mktemp -d "$CACHE/context.XXXXXX")
trap 'rm -rf "$context"' EXIT
step "assembling the build context in $context"
for item in pyproject.toml README.md netdiag image; do
  cp -a "$REPO/$item" "$context/"
done
find "$context" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p "$context/image/offline"
cp -al "$debs_dir" "$context/image/offline/debs"
cp -al "$wheels_dir" "$context/image/offline/wheels"
"$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$context/image/offline/wheels" "$context" \
  2> >(grep -v 'is ignored' >&2)
rm -rf "$context/build" "$context"/*.egg-info

step "docker build (offline)"
# The classic builder: it needs nothing from a registry for a base image the engine already has.
built=$TAG-layered
DOCKER_BUILDKIT=0 "$DOCKER" build -f "$context/image/Dockerfile" -t "$built" \
  --build-arg BASE_IMAGE="$base_image" --build-arg OFFLINE=1 "$context" >"$CACHE/build.log" 2>&1 \
  || { tail -n 30 "$CACHE/build.log" >&2; fail "docker build failed; see $CACHE/build.log"; }

# --- 5. one layer, same configuration ---------------------------------------------------------

step "squashing into $TAG (the offline packages' layer does not stay)"
changes=()
while IFS= read -r change; do
  changes+=(--change "$change")
done < <("$DOCKER" image inspect -f '{{json .Config}}' "$built" | "$PYTHON" -c '
import json, sys
config = json.load(sys.stdin)
for variable in config.get("Env") or []:
    name, _, value = variable.partition("=")
    print(f"ENV {name}={json.dumps(value)}")
for name, value in sorted((config.get("Labels") or {}).items()):
    print(f"LABEL {json.dumps(name)}={json.dumps(value)}")
for key, instruction in (("WorkingDir", "WORKDIR"), ("User", "USER")):
    if config.get(key):
        print(f"{instruction} {config[key]}")
for key, instruction in (("Entrypoint", "ENTRYPOINT"), ("Cmd", "CMD")):
    if config.get(key):
        print(f"{instruction} {json.dumps(config[key])}")
')
container=$("$DOCKER" create "$built")
"$DOCKER" export "$container" | "$DOCKER" import "${changes[@]}" - "$TAG" >/dev/null
"$DOCKER" rm "$container" >/dev/null
"$DOCKER" rmi "$built" >/dev/null
size=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG")
step "built $TAG: $((size / 1000000)) MB"
base_packages=$(chroot "$base_dir/rootfs" dpkg-query -W -f '${Package} ')
"$DOCKER" run -i --rm --network none --entrypoint python3 "$TAG" - "$base_packages" \
  <"$REPO/image/sizes.py" >&2
