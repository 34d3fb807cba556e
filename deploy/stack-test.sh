#!/usr/bin/env bash
# The compose stack started for real: a Docker engine of this script's own, images built
# from Debian's packages, then tests/test_stack.py (pytest -m stack) against them.
#
#   bash deploy/stack-test.sh [extra pytest arguments]
#
# Steps, each timed (the last line prints them all):
#   1. packages   docker.io, docker-compose and debootstrap from Debian, when missing
#   2. engine     dockerd --iptables=false --ip6tables=false --bridge=none --userland-proxy=false,
#                 with its data-root, exec-root and socket under a temporary folder, so it
#                 shares nothing with an engine the machine may already run
#   3. base       debootstrap (the mirror and suite read from this machine's apt configuration
#                 at run time) + `docker import`: a Debian image with python3 and a venv on PATH
#   4. images     the lab's Dockerfile (BASE_IMAGE = that base) and deploy/test-images/ for
#                 Prometheus and Alertmanager from Debian's packages; builds use the host's
#                 network, and pip in the lab image the host's pip index settings (PIP_CONF)
#   5. test       pytest -m stack tests/test_stack.py with DOCKER_HOST set to this engine
# The engine is stopped and the folder removed however the script ends. Where the engine
# cannot start (no package, no dockerd, no Debian mirror for the base image), the test still
# runs and is skipped with the reason (LAB_STACK_UNAVAILABLE); a failed image build of the
# lab's own Dockerfiles fails the script.
#
# Environment: LAB_PYTHON (python with the lab installed; default .venv/bin/python),
# LAB_STACK_DIR (work folder; default a new one under /tmp), LAB_STACK_KEEP=1 (keep it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${LAB_PYTHON:-$ROOT/.venv/bin/python}
WORK=${LAB_STACK_DIR:-$(mktemp -d /tmp/lab-stack.XXXXXX)}
mkdir -p "$WORK"
SOCK="$WORK/docker.sock"
BASE_IMAGE=lab-stack/debian-base:latest
export DOCKER_HOST="unix://$SOCK"
export COMPOSE_PROJECT_NAME=labstack
export LAB_STACK_IMAGES="stability-lab:stack-test lab-stack/prometheus:debian lab-stack/alertmanager:debian"
# The 20.10 client of Debian's docker.io builds with the classic builder; another client on
# PATH may want a buildx plugin this machine does not have.
DOCKER=$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker || echo docker)
TIMES=""
T_START=$(date +%s)
T_STEP=$T_START

log() { echo "stack-test: $*"; }
step_done() {
  local now; now=$(date +%s)
  TIMES="$TIMES $1=$((now - T_STEP))s"
  log "$1 done in $((now - T_STEP)) s"
  T_STEP=$now
}

dockerd_pid=""
cleanup() {
  local rc=$?
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    # The test tears its containers down; anything left is removed with the engine's data.
    $DOCKER ps -aq 2>/dev/null | xargs -r $DOCKER rm -f >/dev/null 2>&1 || true
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
  fi
  if [ "${LAB_STACK_KEEP:-0}" != 1 ]; then
    # overlay mounts the engine may have left behind, then the folder
    grep -o " $WORK/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$WORK"
  fi
  log "timings:$TIMES total=$(( $(date +%s) - T_START ))s"
  exit $rc
}
trap cleanup EXIT

unavailable() {
  log "engine unavailable: $1"
  export LAB_STACK_UNAVAILABLE="$1"
}

# ------------------------------------------------------------------ 1. packages
if [ -z "${LAB_STACK_UNAVAILABLE:-}" ] && command -v apt-get >/dev/null 2>&1; then
  need=""
  for pkg in docker.io docker-compose debootstrap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
  done
  if [ -n "$need" ]; then
    log "installing$need"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need) \
      >"$WORK/apt.log" 2>&1 || unavailable "apt-get install$need failed (see the last lines of $WORK/apt.log): $(tail -1 "$WORK/apt.log")"
  fi
fi
step_done packages

# ------------------------------------------------------------------ 2. engine
if [ -z "${LAB_STACK_UNAVAILABLE:-}" ]; then
  if ! command -v dockerd >/dev/null 2>&1; then
    unavailable "no dockerd on this machine (Debian package docker.io)"
  else
    setsid dockerd --iptables=false --ip6tables=false --bridge=none --userland-proxy=false \
      --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
      -H "unix://$SOCK" >"$WORK/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 60); do
      $DOCKER version >/dev/null 2>&1 && break
      kill -0 "$dockerd_pid" 2>/dev/null || break
      sleep 1
    done
    if ! $DOCKER version >/dev/null 2>&1; then
      unavailable "dockerd did not answer within 60 s: $(tail -1 "$WORK/dockerd.log")"
    fi
  fi
fi
step_done engine

# ------------------------------------------------------------------ 3. base image
apt_mirror() {
  # The first Debian archive of this machine's apt configuration (deb822 .sources or
  # one-line .list), and the suite of /etc/os-release.
  local files; files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$files" ] || return 1
  # shellcheck disable=SC2086
  awk '
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }
    /^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }
  ' $files | grep -v security | head -1
}

if [ -z "${LAB_STACK_UNAVAILABLE:-}" ]; then
  . /etc/os-release
  SUITE=${VERSION_CODENAME:-bookworm}
  MIRROR=$(apt_mirror || true)
  if [ -z "$MIRROR" ]; then
    unavailable "no Debian mirror in /etc/apt/sources.list or sources.list.d"
  else
    log "debootstrap $SUITE from the machine's apt mirror"
    if debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
         "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
      chroot "$WORK/rootfs" python3 -m venv /opt/venv
      chroot "$WORK/rootfs" apt-get clean
      cp "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt" "$WORK/base-ca.pem"
      rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
      tar -C "$WORK/rootfs" --numeric-owner -c . | $DOCKER import \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
      rm -rf "$WORK/rootfs"
    else
      unavailable "debootstrap failed: $(tail -1 "$WORK/debootstrap.log")"
    fi
  fi
fi
step_done base

# ------------------------------------------------------------------ 4. images
host_pip_settings() {
  # The host's pip settings that a container can use, as a pip.conf in $WORK/pip.conf:
  # network index URLs, trusted hosts, time-outs (a file:// index, find-links folder or
  # constraint file is on this host only); and in $WORK/pip-ca.pem the certificates of its
  # `cert` bundle that the base image's bundle lacks, for a network whose TLS goes through
  # a proxy of its own (the whole bundle is too long for one build argument).
  "$PY" - "$WORK" <<'EOF'
import re, subprocess, sys
from pathlib import Path
work = Path(sys.argv[1])
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
keep, skipped, cert = {}, [], None
for line in out.splitlines():
    key, _, value = line.partition("=")
    name = key.split(".")[-1]
    value = value.strip().strip("'\"")
    if name in ("index-url", "extra-index-url"):
        urls = [u for u in value.split() if u.startswith(("http://", "https://"))]
        skipped += [f"{name} {u}" for u in value.split() if u not in urls]
        if urls:
            keep.setdefault(name, []).extend(urls)
    elif name in ("trusted-host", "timeout", "default-timeout", "retries"):
        keep.setdefault(name, []).append(value)
    elif name == "cert" and Path(value).is_file():
        cert = value
    elif value:
        skipped.append(name)
if keep:
    (work / "pip.conf").write_text("[global]\n" + "".join(
        f"{name} = {' '.join(dict.fromkeys(values))}\n" for name, values in keep.items()))
extra = []
if cert:
    pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
    base = work / "base-ca.pem"
    known = set(pem.findall(base.read_text())) if base.is_file() else set()
    extra = [c for c in dict.fromkeys(pem.findall(Path(cert).read_text())) if c not in known]
    if extra:
        (work / "pip-ca.pem").write_text("\n".join(extra) + "\n")
print(f"pip settings for the lab image: {', '.join(sorted(keep)) or 'none'}; "
      f"{len(extra)} CA certificate(s) of its cert bundle beyond the base image's; "
      f"host-only, left out: {', '.join(sorted(set(skipped))) or 'none'}")
EOF
}

if [ -z "${LAB_STACK_UNAVAILABLE:-}" ]; then
  log "$(host_pip_settings)"
  PIP_CONF=$(cat "$WORK/pip.conf" 2>/dev/null || true)
  PIP_EXTRA_CA_PEM=$(cat "$WORK/pip-ca.pem" 2>/dev/null || true)
  build() {  # tag, then docker build arguments; a failed build is tried once more, then fails the script
    local tag=$1; shift
    local blog="$WORK/build-${tag//[\/:]/-}.log"
    for try in 1 2; do
      log "building $tag (try $try)"
      $DOCKER build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$tag" "$@" >"$blog" 2>&1 && return 0
      tail -20 "$blog"
    done
    log "docker build of $tag failed twice (the lines above are its end)"
    exit 1
  }
  build lab-stack/prometheus:debian -f deploy/test-images/prometheus.Dockerfile deploy/test-images
  build lab-stack/alertmanager:debian -f deploy/test-images/alertmanager.Dockerfile deploy/test-images
  build stability-lab:stack-test --build-arg "PIP_CONF=$PIP_CONF" --build-arg "PIP_EXTRA_CA_PEM=$PIP_EXTRA_CA_PEM" .
fi
step_done images

# ------------------------------------------------------------------ 5. test
set +e
"$PY" -m pytest -q -m stack -p no:cacheprovider tests/test_stack.py "$@"
rc=$?
set -e
step_done test
exit $rc
