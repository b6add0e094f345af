#!/usr/bin/env bash
# Do the README's commands work on a stock machine? Run before each release (not in CI: it
# needs root, podman and the Debian/Ubuntu mirrors, and takes 5-10 minutes per case).
#
#   tests/fresh_machine/check.sh [--distro bookworm|noble|all] [--as root|user|both] [--test] [--rebuild]
#
# For each distribution: a stock root filesystem (debootstrap --variant=minbase, plus only
# git, make, python3, ca-certificates and sudo: what someone who clones a repository has),
# imported into podman once as localhost/gradeflow-fresh:<distro> (--rebuild makes it anew).
# Each case starts a new container from it (--privileged, runc, host network), clones this
# repository's HEAD (a git bundle: commit first) and then, as
#   root: runs `make demo`, which must install what it needs and grade the example course;
#   user: (alice, who may sudo) runs `make demo`, which must stop and print the one
#         `sudo apt-get install` line; runs that line, then `make demo` again, which must pass.
# After a passing demo it enables the Jupyter extension with the documented command, checks
# `jupyter server extension list` validates it, and fetches /gradeflow from a started server.
# --test then also runs `make test` (the whole suite, as CI does; as alice after the sudo line
# it prints): slow, and the image tier needs root.
#
# --distro noble (Ubuntu 24.04) needs Ubuntu's archive and /usr/share/keyrings/ubuntu-archive-keyring.gpg;
# it has not been run yet (the reference machine may only reach Debian's mirrors).
# The host's CA bundle is mounted into the container (for a TLS-intercepting proxy).
# Environment: GRADEFLOW_DEBIAN_MIRROR, GRADEFLOW_UBUNTU_MIRROR, GRADEFLOW_CA_BUNDLE.
# Output: one line per case, "PASS|FAIL distro who: ... (times)"; logs in the printed folder.
# Exit: 0 all passed, 1 a case failed, 2 bad usage, 3 missing prerequisite.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DEBIAN_MIRROR="${GRADEFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
UBUNTU_MIRROR="${GRADEFLOW_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
CA_BUNDLE="${GRADEFLOW_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
DISTROS=(bookworm)
WHO=(root user)
RUN_TEST=0
REBUILD=0

say() { echo "fresh-machine: $*" >&2; }
die() { local code=$1; shift; say "ERROR: $*"; exit "$code"; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --distro) [ $# -ge 2 ] || usage; case "$2" in all) DISTROS=(bookworm noble) ;; bookworm|noble) DISTROS=("$2") ;; *) usage ;; esac; shift ;;
    --as) [ $# -ge 2 ] || usage; case "$2" in both) WHO=(root user) ;; root|user) WHO=("$2") ;; *) usage ;; esac; shift ;;
    --test) RUN_TEST=1 ;;
    --rebuild) REBUILD=1 ;;
    -h|--help) usage 0 ;;
    *) say "unknown argument: $1"; usage ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || die 3 "run as root (debootstrap and podman --privileged)"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
for t in podman runc debootstrap git; do command -v "$t" >/dev/null || die 3 "missing: $t (apt-get install $t)"; done
PM=(podman --runtime runc)
# podman's default rlimits (nofile 1048576) can exceed the host's hard limit: runc then fails
# with "error setting rlimit type 7". Ask for what the host allows.
cap() { local h; h=$(ulimit -H "$1"); [ "$h" = unlimited ] || [ "$h" -gt "$2" ] && echo "$2" || echo "$h"; }
ULIMITS=(--ulimit "nofile=$(cap -n 65536):$(cap -n 65536)" --ulimit "nproc=$(cap -u 32768):$(cap -u 32768)")

OUT="$(mktemp -d "${TMPDIR:-/var/tmp}/gradeflow-fresh-check.XXXXXX")"
say "logs: $OUT"
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] || say "warning: uncommitted changes are NOT checked (the container clones HEAD)"
git -C "$REPO" bundle create "$OUT/gradeflow.bundle" HEAD >/dev/null 2>&1 || die 3 "git bundle of $REPO failed"
chmod 644 "$OUT/gradeflow.bundle"
COMMIT=$(git -C "$REPO" rev-parse --short HEAD)

# --- the stock root filesystems -------------------------------------------------------------
make_image() {
  local distro=$1 tag=$2 rootfs="$OUT/rootfs-$1" args=() sources keyring
  case "$distro" in
    bookworm)
      args=(bookworm "$rootfs" "$DEBIAN_MIRROR")
      sources="deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main" ;;
    noble)
      # Debian 12's debootstrap has no "noble" script; Ubuntu's releases all use "gutsy".
      local script=/usr/share/debootstrap/scripts/noble
      [ -e "$script" ] || script=/usr/share/debootstrap/scripts/gutsy
      keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg
      [ -e "$keyring" ] || die 3 "$keyring is missing (apt-get install ubuntu-keyring)"
      args=(--keyring="$keyring" --components=main,universe noble "$rootfs" "$UBUNTU_MIRROR" "$script")
      sources="deb $UBUNTU_MIRROR noble main universe
deb $UBUNTU_MIRROR noble-updates main universe
deb $UBUNTU_MIRROR noble-security main universe" ;;
  esac
  say "debootstrap --variant=minbase $distro (a few minutes)"
  debootstrap --variant=minbase --include=git,make,python3,ca-certificates,sudo "${args[@]}" >"$OUT/debootstrap-$distro.log" 2>&1 \
    || { tail -n 20 "$OUT/debootstrap-$distro.log" >&2; die 1 "debootstrap $distro failed"; }
  echo "$sources" >"$rootfs/etc/apt/sources.list"
  rm -f "$rootfs/etc/apt/sources.list.d/ubuntu.sources"
  # A normal user who may use sudo (for apt): that is all the README asks of a user.
  chroot "$rootfs" useradd --create-home --shell /bin/bash alice
  echo "alice ALL=(ALL) NOPASSWD: ALL" >"$rootfs/etc/sudoers.d/alice"
  chmod 440 "$rootfs/etc/sudoers.d/alice"
  chroot "$rootfs" apt-get clean
  tar --numeric-owner -C "$rootfs" -c . | "${PM[@]}" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
      - "$tag" >/dev/null || die 1 "podman import of the $distro rootfs failed"
  rm -rf "$rootfs"
}

# --- one case ---------------------------------------------------------------------------------
# The script each case runs inside its container, as root; it drops to alice with runuser.
case_script() {
  cat <<'EOF'
set -uo pipefail
who=$1 run_test=$2
t() { date +%s; }
as() { if [ "$who" = root ]; then bash -lc "cd ~ && $1"; else runuser -l alice -c "$1"; fi; }
# make TARGET as root; as alice: a stock machine lacks apt packages, so the first try must stop
# with the one `sudo apt-get install` line, which alice runs before trying again.
make_as() {
  local target=$1 log=/srv/out/$1.log line rc
  if [ "$who" = user ]; then
    as "cd gradeflow && make $target" >"/srv/out/$target-first.log" 2>&1; rc=$?
    line=$(grep -m1 -E '^ *sudo apt-get install' "/srv/out/$target-first.log" | sed 's/^ *//')
    if [ $rc -ne 0 ]; then
      [ -n "$line" ] || { tail -n 20 "/srv/out/$target-first.log"; echo "RESULT make $target failed without printing a sudo apt-get install line"; exit 1; }
      echo "first make $target as alice: exit $rc, it said to run: $line"
      as "$line" >"/srv/out/$target-apt.log" 2>&1 || { tail -n 20 "/srv/out/$target-apt.log"; echo "RESULT '$line' failed"; exit 1; }
    elif [ "$target" = demo ]; then
      echo "RESULT make demo passed before bubblewrap was installed?"; exit 1
    fi
  fi
  as "cd gradeflow && make $target" >"$log" 2>&1
}
home=$(as 'echo $HOME')
as 'git clone -q /srv/gradeflow.bundle gradeflow' || { echo "RESULT clone failed"; exit 1; }
t1=$(t)
make_as demo; rc=$?
t2=$(t)
tail -n 25 /srv/out/demo.log
[ $rc -eq 0 ] || { echo "RESULT make demo failed (exit $rc)"; exit 1; }
[ -f "$home/gradeflow-demo/gradebook.db" ] || { echo "RESULT no $home/gradeflow-demo/gradebook.db"; exit 1; }
grep -q 'graded' /srv/out/demo.log || { echo "RESULT no grading summary"; exit 1; }
# The documented Jupyter command, from the venv make set up.
as 'cd gradeflow && .venv/bin/jupyter server extension enable pipelines.jupyter' >/srv/out/jupyter-enable.log 2>&1
if grep -q 'Validation failed' /srv/out/jupyter-enable.log; then cat /srv/out/jupyter-enable.log; echo "RESULT jupyter server extension enable failed"; exit 1; fi
as 'cd gradeflow && .venv/bin/jupyter server extension list' >/srv/out/jupyter-list.log 2>&1
grep -A2 'pipelines.jupyter' /srv/out/jupyter-list.log
grep -q 'pipelines.jupyter.*enabled' /srv/out/jupyter-list.log && grep -q 'pipelines.jupyter.*OK' /srv/out/jupyter-list.log \
  || { cat /srv/out/jupyter-list.log; echo "RESULT the extension is not listed as enabled and OK"; exit 1; }
port=$((20000 + RANDOM % 20000))
pid=$(as "cd gradeflow-demo; nohup ~/gradeflow/.venv/bin/jupyter server --no-browser --port=$port --ip=127.0.0.1 --IdentityProvider.token=fresh $( [ "$who" = root ] && echo --allow-root ) >/srv/out/jupyter-server.log 2>&1 & echo \$!")
code=000
for _ in $(seq 60); do
  code=$(as "cd gradeflow && .venv/bin/python -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:$port/gradeflow?token=fresh', timeout=5).status)\"" 2>/dev/null) && break
  sleep 1
done
kill "$pid" 2>/dev/null || true
[ "$code" = 200 ] || { tail -n 20 /srv/out/jupyter-server.log; echo "RESULT GET /gradeflow answered $code"; exit 1; }
t3=$(t)
extra=""
if [ "$run_test" = 1 ]; then
  make_as test; rc=$?
  tail -n 15 /srv/out/test.log
  extra=", make test $(( $(t) - t3 ))s exit $rc: $(grep -E '^=+ .*(passed|failed).* =+$' /srv/out/test.log | tail -n1)"
  [ $rc -eq 0 ] || { echo "RESULT make demo ok, make test failed$extra"; exit 1; }
fi
echo "RESULT ok: make demo $((t2 - t1))s (Python $(as 'cd gradeflow && .venv/bin/python -c "import platform; print(platform.python_version())"'), demo in $home/gradeflow-demo), jupyter extension enabled and /gradeflow answers 200$extra"
EOF
}

run_case() {
  local distro=$1 who=$2 tag=$3 dir="$OUT/$1-$2" t0 rc result
  mkdir -p "$dir"; chmod 777 "$dir"
  local mounts=(-v "$OUT/gradeflow.bundle:/srv/gradeflow.bundle:ro" -v "$dir:/srv/out")
  [ -n "$CA_BUNDLE" ] && [ -f "$CA_BUNDLE" ] && mounts+=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
  say "$distro as $who: make demo in a new container (logs: $dir)"
  t0=$SECONDS
  set +e
  "${PM[@]}" run --rm --privileged --network host "${ULIMITS[@]}" --name "gradeflow-fresh-$distro-$who-$$" "${mounts[@]}" "$tag" \
      bash -c "$(case_script)" case "$who" "$RUN_TEST" >"$dir/case.log" 2>&1
  rc=$?
  set -e
  result=$(grep '^RESULT' "$dir/case.log" | tail -n1 | sed 's/^RESULT //' || true)
  if [ $rc -eq 0 ]; then
    echo "PASS $distro $who ($COMMIT): ${result:-?} (whole case $((SECONDS - t0))s)"
  else
    sed -n '1,200p' "$dir/case.log" | grep -v '^RESULT' | tail -n 30 >&2
    echo "FAIL $distro $who ($COMMIT): ${result:-exit $rc, see $dir/case.log} (whole case $((SECONDS - t0))s)"
    FAILED=1
  fi
}

FAILED=0
for distro in "${DISTROS[@]}"; do
  tag="localhost/gradeflow-fresh:$distro"
  if [ "$REBUILD" -eq 1 ] || ! "${PM[@]}" image exists "$tag"; then make_image "$distro" "$tag"; fi
  for who in "${WHO[@]}"; do
    run_case "$distro" "$who" "$tag"
  done
done
exit $FAILED
