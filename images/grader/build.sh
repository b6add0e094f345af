#!/usr/bin/env bash
# Build the gradeflow grader image with podman, offline from container registries, cached.
#
#   images/grader/build.sh [--force] [--tag IMAGE] [--base-image IMAGE] [--no-check] [-- PODMAN-BUILD-ARGS...]
#
# Without --base-image the base is localhost/gradeflow-base:bookworm, created here once when
# missing: debootstrap --variant=minbase bookworm (+ python3, python3-venv, security updates)
# into a temp dir, then `podman import`. No image is pulled from any registry.
# That default base also gets the packages courses import (numpy, or GRADEFLOW_COURSE_PACKAGES)
# and every version pinned by constraints.txt.
# With --base-image (e.g. quay.io/jupyter/minimal-notebook:python-3.11, or your course's
# notebook image) podman uses/pulls that image instead and debootstrap is not needed; its
# packages and versions are kept (nothing pinned, nothing added).
#
# Cache: the image is labelled gradeflow.inputs=<sha256 of the Containerfile, the build
# context (pyproject.toml, constraints.txt, README.md, steps/, pipelines/ without
# __pycache__), the base image's id and the build args>. When the tag already carries that label the build is
# skipped (a fraction of a second). --force rebuilds anyway (podman's layer cache still
# applies; pass -- --no-cache for a truly cold build).
#
# Output: progress on stderr; the image reference on stdout (IMAGE=$(images/grader/build.sh)).
#
# Exit codes:
#   0  image ready (built, or already up to date)
#   2  bad usage
#   3  missing prerequisite: podman/runc/debootstrap not installed, debootstrap needs root,
#      or the repository lacks pyproject.toml/steps/pipelines
#   4  creating the debootstrap base image failed
#   5  podman build failed
#   6  the built image failed its smoke check (imports + kernelspec, under sandbox flags)
#
# Environment: GRADEFLOW_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# GRADEFLOW_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security),
# GRADEFLOW_CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt; mounted into the build
# so pip trusts a TLS-intercepting proxy; set it to "" to not mount anything).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CONTAINERFILE="$HERE/Containerfile"
DEFAULT_BASE=localhost/gradeflow-base:bookworm
TAG=localhost/gradeflow-grader:dev
BASE=""
FORCE=0
CHECK=1
EXTRA=()
MIRROR="${GRADEFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${GRADEFLOW_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
CA_BUNDLE="${GRADEFLOW_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
# The flags the sandbox runs the image with (the smoke check uses them too).
# shellcheck disable=SC2054  # the commas are inside tmpfs options
RUN_FLAGS=(--runtime runc --rm --network none --read-only --user 1000 --cap-drop ALL
  --security-opt no-new-privileges --memory 512m --pids-limit 128
  --ulimit nofile=1024:1024 --ulimit nproc=256:256
  --tmpfs /work:rw,size=64m,mode=1777 --tmpfs /tmp:rw,size=64m,mode=1777)

say() { echo "gradeflow-image: $*" >&2; }
die() { local code=$1; shift; say "ERROR: $*"; exit "$code"; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --no-check) CHECK=0 ;;
    --tag) [ $# -ge 2 ] || usage; TAG=$2; shift ;;
    --tag=*) TAG=${1#*=} ;;
    --base-image) [ $# -ge 2 ] || usage; BASE=$2; shift ;;
    --base-image=*) BASE=${1#*=} ;;
    -h|--help) usage 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) say "unknown argument: $1"; usage ;;
  esac
  shift
done

T0=$(now)

# --- prerequisites ---------------------------------------------------------------------
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
if [ -z "$BASE" ] && ! command -v debootstrap >/dev/null 2>&1; then missing+=(debootstrap); fi
[ ${#missing[@]} -eq 0 ] || die 3 "missing: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]} (or run: make setup)"
for f in pyproject.toml constraints.txt steps pipelines; do
  [ -e "$REPO/$f" ] || die 3 "$REPO/$f is missing: the image installs gradeflow from the repository root"
done

# crun (podman's default on some hosts) fails on hybrid cgroup v1 machines; runc works everywhere.
PODMAN=(podman --runtime runc)
# podman must not inherit the lock's fd 9 (a lingering podman process would hold the lock).
pm() { "${PODMAN[@]}" "$@" 9>&-; }

# One build at a time per user (parallel test workers would otherwise race).
LOCK="${TMPDIR:-/tmp}/gradeflow-image-build.$(id -u).lock"
exec 9>"$LOCK"
if ! flock -n 9; then say "another build is running; waiting for it"; flock 9; fi

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/gradeflow-image.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# --- base image ------------------------------------------------------------------------
make_base() {
  [ "$(id -u)" -eq 0 ] || die 3 "$DEFAULT_BASE is missing and creating it (debootstrap) needs root; run this once as root, or pass --base-image IMAGE"
  local t rootfs=$WORK/rootfs
  t=$(now)
  say "creating $DEFAULT_BASE: debootstrap --variant=minbase bookworm from $MIRROR (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die 4 "debootstrap failed (log above)"; }
  # Keep the image small: no docs (but copyrights), man pages or translations, now or later.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/gradeflow-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
  say "applying bookworm-updates and bookworm-security"
  { chroot "$rootfs" apt-get update -q && DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -y -q upgrade; } >"$WORK/upgrade.log" 2>&1 \
    || { tail -n 20 "$WORK/upgrade.log" >&2; die 4 "apt-get upgrade in the new rootfs failed (log above)"; }
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  find "$rootfs/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  : >"$rootfs/etc/resolv.conf"   # podman provides one at run time
  tar --numeric-owner -C "$rootfs" -c . | pm import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["/bin/bash"]' \
      --change "LABEL gradeflow.base=debootstrap-minbase-bookworm" \
      - "$DEFAULT_BASE" >/dev/null \
    || die 4 "podman import of the debootstrap rootfs failed"
  rm -rf "$rootfs"
  say "created $DEFAULT_BASE in $(since "$t")"
}

if [ -z "$BASE" ]; then
  BASE=$DEFAULT_BASE
  if pm image exists "$BASE"; then
    say "base $BASE present"
  else
    make_base
  fi
fi
# A registry base that is not here yet is pulled by podman build; hash its id when known.
BASE_ID=$(pm image inspect --format '{{.Id}}' "$BASE" 2>/dev/null || echo "$BASE")

# The default base stands in for a course image: it gets the packages courses import (numpy;
# GRADEFLOW_COURSE_PACKAGES overrides) at constraints.txt's versions. A course's own image
# (--base-image) keeps its own packages and versions.
COURSE_ARGS=()
if [ "$BASE" = "$DEFAULT_BASE" ]; then
  COURSE_ARGS=(--build-arg "COURSE_PACKAGES=${GRADEFLOW_COURSE_PACKAGES-numpy}" --build-arg CONSTRAINTS=constraints.txt)
fi

# --- build context and input hash ------------------------------------------------------
CTX=$WORK/context
mkdir -p "$CTX"
inputs=(pyproject.toml constraints.txt steps pipelines)
[ -f "$REPO/README.md" ] && inputs+=(README.md)
(cd "$REPO" && tar --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -c "${inputs[@]}") | tar -x -C "$CTX"
if [ ! -f "$CTX/README.md" ]; then
  say "warning: README.md is missing at the repository root; using a placeholder (pyproject.toml's readme)"
  echo "gradeflow" >"$CTX/README.md"
fi
HASH=$(
  {
    sha256sum "$CONTAINERFILE" | cut -d' ' -f1
    (cd "$CTX" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    echo "base=$BASE_ID"
    printf 'arg=%s\n' "${COURSE_ARGS[@]+"${COURSE_ARGS[@]}"}" "${EXTRA[@]+"${EXTRA[@]}"}"
  } | sha256sum | cut -c1-64
)

if [ "$FORCE" -eq 0 ]; then
  have=$(pm image inspect --format '{{ index .Config.Labels "gradeflow.inputs" }}' "$TAG" 2>/dev/null || true)
  if [ "$have" = "$HASH" ]; then
    say "up to date: $TAG (inputs ${HASH:0:12}, base $BASE); nothing built, $(since "$T0")"
    echo "$TAG"
    exit 0
  fi
  if [ -n "$have" ]; then say "inputs changed (${have:0:12} -> ${HASH:0:12}); rebuilding $TAG"; else say "$TAG not built yet; building"; fi
else
  say "--force: rebuilding $TAG"
fi

# --- build -----------------------------------------------------------------------------
# Explicit ulimits: podman's defaults (nofile 1048576) exceed this host's hard limit and
# runc then fails with "error setting rlimit type 7: operation not permitted".
cap() { local h; h=$(ulimit -H "$1"); [ "$h" = unlimited ] || [ "$h" -gt "$2" ] && echo "$2" || echo "$h"; }
NOFILE=$(cap -n 65536)
NPROC=$(cap -u 32768)
build=("${PODMAN[@]}" build --network host -f "$CONTAINERFILE"
  --build-arg "BASE_IMAGE=$BASE" --label "gradeflow.inputs=$HASH" --label "gradeflow.base=$BASE"
  --ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC" -t "$TAG" "${COURSE_ARGS[@]+"${COURSE_ARGS[@]}"}")
if [ -n "$CA_BUNDLE" ] && [ -f "$CA_BUNDLE" ]; then
  build+=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
build+=("${EXTRA[@]+"${EXTRA[@]}"}" "$CTX")
TB=$(now)
OLD_ID=$(pm image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
say "podman build of $TAG from base $BASE"
"${build[@]}" >&2 9>&- || die 5 "podman build failed (output above)"
say "built $TAG in $(since "$TB")"
# Drop the image this build replaced (now untagged), unless a container or tag still uses it.
NEW_ID=$(pm image inspect --format '{{.Id}}' "$TAG")
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then pm rmi "$OLD_ID" >/dev/null 2>&1 || true; fi

# --- smoke check, under the sandbox's own flags ----------------------------------------
if [ "$CHECK" -eq 1 ]; then
  pm run "${RUN_FLAGS[@]}" "$TAG" python -c '
import os, steps.execute, papermill, nbgrader, ipykernel
from jupyter_client.kernelspec import KernelSpecManager
assert os.getuid() == 1000, os.getuid()
KernelSpecManager().get_kernel_spec("python3")
' >&2 || die 6 "the new image fails its smoke check (imports, uid 1000, kernelspec python3)"
fi

size=$(pm image inspect --format '{{.Size}}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }')
say "ready: $TAG ($size, inputs ${HASH:0:12}) in $(since "$T0") total"
echo "$TAG"
