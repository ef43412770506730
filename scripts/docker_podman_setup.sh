#!/usr/bin/env bash
# Prepares a machine without a Docker engine or registry access for
# `make docker-test`: podman (rootful, runc, cgroupfs) from Debian, and a local
# Debian bookworm base image made by debootstrap (from the Debian mirror this
# machine's apt uses) and `podman import` (no image is pulled from a registry).
# Idempotent: a second run only checks and returns in seconds. Podman's image
# storage (/var/lib/containers/storage) and the base image stay on the machine,
# so later builds reuse their cached layers.
#
# Exit status 77 (printed with the reason): podman cannot be had or cannot run
# a container on this machine (not root, no apt-get, apt-get failed, or a
# container does not start): `.ci/run` then skips the image test.
#
#   BASE_IMAGE     name of the local base image (default localhost/mmtrack-serve-base:bookworm)
#   DEBIAN_MIRROR  where debootstrap fetches from and the image's apt sources
#                  point (default: the Debian mirror this machine's apt uses,
#                  else http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  the image's security source (default: this
#                  machine's, else http://deb.debian.org/debian-security)
#
# `scripts/docker_podman_setup.sh --mirrors` prints the two mirrors and exits.
set -euo pipefail

# The first Debian URI in this machine's apt sources (/etc/apt/sources.list and
# sources.list.d/: one-line .list and deb822 .sources files, in apt's order),
# so debootstrap fetches where apt already does, behind whatever mirror or
# proxy it uses. $1: "archive" (a release suite: bookworm, stable,
# trixie-updates...) or "security" (a -security suite); $2: apt's folder.
# Prints nothing when no enabled `deb` entry names a Debian suite.
apt_debian_uri() {
  local kind="$1" dir="${2:-/etc/apt}" files=() f
  [[ -f "$dir/sources.list" ]] && files+=("$dir/sources.list")
  for f in "$dir"/sources.list.d/*; do
    [[ -f "$f" && ( "$f" == *.list || "$f" == *.sources ) ]] && files+=("$f")
  done
  ((${#files[@]})) || return 0
  awk -v kind="$kind" '
    function debian(suite) {          # a Debian release suite, by codename or class
      return suite ~ ("^(buster|bullseye|bookworm|trixie|forky|duke|sid|experimental|" \
                      "stable|testing|unstable|oldstable|oldoldstable)" \
                      "(-updates|-backports|-proposed-updates|-security|/updates)?$")
    }
    # an entry: its types, URIs and suites, each a space-separated list
    function entry(types, uris, suites,   n, i, u, s, wanted) {
      if (found || (" " types " ") !~ / deb /) return
      n = split(suites, s, " ")
      for (i = 1; i <= n && !wanted; i++)
        wanted = debian(s[i]) && ((s[i] ~ /-security$|\/updates$/) == (kind == "security"))
      if (!wanted) return
      n = split(uris, u, " ")
      for (i = 1; i <= n; i++)
        if (u[i] ~ /^(https?|ftp):\/\//) { sub(/\/+$/, "", u[i]); print u[i]; found = 1; return }
    }
    function stanza() {
      if (enabled !~ /^(no|false|0)$/) entry(types, uris, suites)
      types = uris = suites = enabled = ""
    }
    FNR == 1 { stanza() }
    FILENAME !~ /\.sources$/ {          # one line: deb [options] uri suite [component...]
      sub(/#.*/, "")
      sub(/\[[^]]*\]/, "")
      if (NF >= 3) entry($1, $2, $3)
      next
    }
    /^[ \t]*#/ { next }                 # deb822: "Key: value" stanzas, blank-line separated
    /^[ \t]*$/ { stanza(); next }
    /^[ \t]/ { next }                   # a continuation line (Signed-By keys)
    {
      key = tolower($0); sub(/:.*/, "", key)
      value = $0; sub(/^[^:]*:[ \t]*/, "", value); sub(/[ \t]+$/, "", value)
      if (key == "types") types = value
      else if (key == "uris") uris = value
      else if (key == "suites") suites = value
      else if (key == "enabled") enabled = tolower(value)
    }
    END { stanza() }
  ' "${files[@]}"
}

BASE_IMAGE="${BASE_IMAGE:-localhost/mmtrack-serve-base:bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(apt_debian_uri archive || true)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(apt_debian_uri security || true)}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
if [[ "${1:-}" == --mirrors ]]; then
  echo "DEBIAN_MIRROR=$DEBIAN_MIRROR"
  echo "DEBIAN_SECURITY_MIRROR=$DEBIAN_SECURITY_MIRROR"
  exit 0
fi
SUITE=bookworm
CONF=/etc/containers/containers.conf
MARK="# mmtrack-serve: written by scripts/docker_podman_setup.sh"

say() { echo "docker-setup: $*"; }
unable() { echo "docker-setup: cannot test the image here: $*" >&2; exit 77; }

# -- 1. podman, runc and debootstrap from Debian --------------------------------
missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null; then
    unable "missing ${missing[*]}; install podman, runc and debootstrap (Debian, as root: apt-get install podman runc debootstrap)"
  fi
  say "installing ${missing[*]} from Debian"
  log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends podman runc debootstrap uidmap iptables ca-certificates; } >"$log" 2>&1; then
    tail -5 "$log" >&2
    rm -f "$log"
    unable "apt-get could not install ${missing[*]} (above)"
  fi
  rm -f "$log"
fi

# -- 2. containers.conf: runc, cgroupfs, explicit ulimits ----------------------
# Machines without systemd (containers, VMs started by an init of their own)
# need the cgroupfs manager and a file events log; the default ulimits are
# explicit and modest: podman's own defaults (nofile 1048576) need
# CAP_SYS_RESOURCE to go past the host's hard limit, and without it every
# container fails with "error setting rlimit ... operation not permitted".
# nofile is 65536 or the host's hard limit where lower; nproc is 32768 or the
# host's hard limit where lower (on a VM tried here, anything above 32768 was
# refused although the hard limit was 96365). An existing containers.conf that
# is not ours is left alone.
cap() { local hard="$1" want="$2"; [[ "$hard" == unlimited || "$hard" -gt "$want" ]] && echo "$want" || echo "$hard"; }
NOFILE="$(cap "$(ulimit -Hn)" 65536)"
NPROC="$(cap "$(ulimit -Hu)" 32768)"
if [[ "$(id -u)" -eq 0 ]]; then
  if [[ ! -f "$CONF" ]] || grep -qF "$MARK" "$CONF"; then
    mkdir -p "$(dirname "$CONF")"
    cat > "$CONF.tmp" <<EOF
$MARK
[containers]
default_ulimits = [
  "nofile=$NOFILE:$NOFILE",
  "nproc=$NPROC:$NPROC",
]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    if ! cmp -s "$CONF.tmp" "$CONF" 2>/dev/null; then
      mv "$CONF.tmp" "$CONF"
      say "wrote $CONF"
    else
      rm -f "$CONF.tmp"
    fi
  else
    say "$CONF exists and is not ours: left as it is"
  fi
fi

# overlay where the kernel allows it, else vfs (slower, bigger, always works)
if ! podman info >/dev/null 2>&1; then
  [[ "$(id -u)" -eq 0 ]] || unable "podman does not start for uid $(id -u): $(podman info 2>&1 | tail -1)"
  say "podman does not start with the default storage; trying vfs"
  mkdir -p /etc/containers
  if [[ ! -f /etc/containers/storage.conf ]]; then
    printf '%s\n[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
      "$MARK" > /etc/containers/storage.conf
  fi
  podman info >/dev/null 2>&1 || unable "podman does not start, with overlay or vfs storage: $(podman info 2>&1 | tail -1)"
fi
say "podman $(podman version --format '{{.Client.Version}}'), storage $(podman info --format '{{.Store.GraphDriverName}}')"

# a container must start (user namespaces, cgroups, seccomp, mounts); checked
# on the base image once it is there
runs() {
  local out
  out="$(podman run --rm --network none "$BASE_IMAGE" true 2>&1)" \
    || unable "podman cannot start a container on this machine: $(tail -1 <<< "$out")"
  say "a container starts on $BASE_IMAGE"
}

# -- 3. the local base image ---------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
  say "base image $BASE_IMAGE exists"
  runs
  exit 0
fi
[[ "$(id -u)" -eq 0 ]] || unable "the base image $BASE_IMAGE is missing and debootstrap needs root"
say "making $BASE_IMAGE: debootstrap $SUITE from $DEBIAN_MIRROR (2-4 minutes)"
ROOTFS="$(mktemp -d /var/tmp/mmtrack-serve-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR" \
  > "$ROOTFS.log" 2>&1 || { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"
# the same sources as Debian's own images: release, updates and security
rm -f "$ROOTFS/etc/apt/sources.list"
cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# as in Debian's slim images: no docs, no caches
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/usr/share/doc/* \
  "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*
tar -C "$ROOTFS" --numeric-owner -c . | podman import --quiet \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --message "debootstrap --variant=minbase $SUITE $DEBIAN_MIRROR" \
  - "$BASE_IMAGE" >/dev/null
say "made $BASE_IMAGE ($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
runs
