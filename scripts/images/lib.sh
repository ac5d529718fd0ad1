# Shared by the scripts in scripts/images/ (sourced, not run): each builds one test image from
# Debian bookworm packages with no registry. mmdebstrap makes the root filesystem from the apt
# mirror, `docker import` loads it and a `docker build` with no RUN step adds the stop signal.
# A script does
#   . "$(dirname "$0")/lib.sh"
#   image_begin "$tag"                       # prints the tag and exits when already built
#   image_customize <<'HOOK' ... HOOK        # its own customize hook ($root: the rootfs)
#   image_build "$tag" PKG,PKG,... SIGNAL --change 'ENTRYPOINT [...]' ...
# Only the tag goes to stdout; logs go to stderr.
# shellcheck shell=bash

log() { printf '==> %s\n' "$*" >&2; }

# Exit 0 printing $1 when that tag is already in the engine (the build runs once per machine;
# `docker rmi` the tag to rebuild); else make sure mmdebstrap is there, pick the apt sources
# (image_mirrors) and make a scratch directory (image_tmp, removed on exit).
image_begin() {
  local tag="$1" f
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
  fi

  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mmdebstrap >&2
  fi

  # Apt sources: the host's own when they are bookworm's (they may point at a local mirror or
  # a snapshot), else Debian's mirrors. CLANK_DEBIAN_SOURCES may name a sources file to use
  # instead.
  image_mirrors=()
  for f in "${CLANK_DEBIAN_SOURCES:-}" /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -n "$f" ] && [ -s "$f" ] && grep -Eq '^[^#]*\bbookworm\b' "$f"; then
      image_mirrors=("$f")
      break
    fi
  done
  if [ ${#image_mirrors[@]} -eq 0 ]; then
    image_mirrors=(
      "deb http://deb.debian.org/debian bookworm main"
      "deb http://deb.debian.org/debian bookworm-updates main"
      "deb http://deb.debian.org/debian-security bookworm-security main"
    )
  fi

  image_tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: image_tmp is global and could be reassigned
  trap "rm -rf '$image_tmp'" EXIT
}

# Writes the mmdebstrap hook $1 from the sh code on stdin, run with set -eu and $root the root
# filesystem.
image_hook() {
  # shellcheck disable=SC2016 # $1 is the hook's argument
  { printf '#!/bin/sh\nset -eu\nroot="$1"\n'; cat; } >"$1"
  chmod 0755 "$1"
}

# Reads the body of the image's customize hook on stdin: sh code run inside mmdebstrap after
# every package is installed (and after the common cleanup), with $root the root filesystem.
image_customize() {
  image_hook "$image_tmp/customize"
}

# image_build TAG PACKAGES STOPSIGNAL [--change INSTRUCTION]...
# Bootstraps a minbase bookworm with ca-certificates and PACKAGES (comma-separated), runs the
# common cleanup and then the image's own (image_customize), when given, as customize hooks,
# imports the root filesystem with the given --change instructions and tags TAG with STOPSIGNAL
# added.
# Prints TAG on stdout.
image_build() {
  local tag="$1" packages="$2" stopsignal="$3"
  shift 3

  # Runs inside mmdebstrap after every package is installed, before the image's own hook.
  image_hook "$image_tmp/cleanup" <<'HOOK'
# A private key baked into every container is no use to anyone.
rm -f "$root/etc/ssl/private/ssl-cert-snakeoil.key" "$root/etc/ssl/certs/ssl-cert-snakeoil.pem"
rm -rf "$root/var/cache/debconf/"*-old "$root/var/log/"*.log "$root/var/log/apt/"*
# mmdebstrap's own /run cleanup is skipped so that an image's hook can keep the runtime
# directories its server needs (a server run as its own user cannot make them); what else is
# there is a leftover of the build.
find "$root/run" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf --one-file-system {} +
HOOK
  local hooks=(--customize-hook="$image_tmp/cleanup")
  if [ -e "$image_tmp/customize" ]; then
    hooks+=(--customize-hook="$image_tmp/customize")
  fi

  log "building $tag (mmdebstrap from ${image_mirrors[*]})"
  # mmdebstrap puts its own policy-rc.d (exit 101) in place while it installs and deletes it at
  # the end; skipping that and writing ours in the extract hook (before any maintainer script
  # runs) keeps daemons from starting during the build and in any later apt-get in the image.
  # shellcheck disable=SC2016 # $1 is the hook's argument
  mmdebstrap --variant=minbase \
    --include="ca-certificates,$packages" \
    --skip=chroot/policy-rc.d --skip=cleanup/run \
    --extract-hook='mkdir -p "$1/usr/sbin" && printf "#!/bin/sh\nexit 101\n" >"$1/usr/sbin/policy-rc.d" && chmod 0755 "$1/usr/sbin/policy-rc.d"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    "${hooks[@]}" \
    bookworm "$image_tmp/rootfs.tar" "${image_mirrors[@]}" >&2

  # `docker import --change` refuses STOPSIGNAL (Docker 20.10), so a build on top of the
  # imported image (legacy builder: it takes an image id in FROM; no RUN, so nothing runs) adds
  # it. The imported image stays as the tag's parent and goes with it on `docker rmi`.
  log "importing the root filesystem"
  local base
  base="$(docker import "$@" "$image_tmp/rootfs.tar")"
  rm -f "$image_tmp/rootfs.tar"
  mkdir "$image_tmp/context"
  printf 'FROM %s\nSTOPSIGNAL %s\n' "$base" "$stopsignal" >"$image_tmp/context/Dockerfile"
  log "configuring the image $tag"
  if ! DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$image_tmp/context" >&2; then
    docker rmi "$base" >/dev/null 2>&1 || true
    exit 1
  fi
  echo "$tag"
}
