#!/usr/bin/env bash
# Builds a PostgreSQL 15 image from Debian bookworm packages, with no registry: mmdebstrap
# makes the root filesystem from the apt mirror, `docker import` loads it and a `docker build`
# with no RUN step adds the stop signal.
# Prints the image tag on stdout (everything else goes to stderr), so a caller can do
#   tag=$(scripts/images/postgres.sh)
# Usage: scripts/images/postgres.sh [TAG]        (default TAG: clank-test/postgres:15)
# A tag already in the engine is reused as is: the build runs once per machine; `docker rmi`
# the tag to rebuild.
#
# The image (run as root; the entrypoint drops to the postgres user):
#   ENTRYPOINT /usr/local/bin/clank-postgres, CMD postgres, STOPSIGNAL SIGINT (fast shutdown),
#   EXPOSE 5432, PATH starts with /usr/lib/postgresql/15/bin (postgres, initdb, psql,
#   pg_amcheck, ...). `docker run IMAGE` or `docker run IMAGE -c key=value` runs the server
#   on $PGDATA (default /var/lib/postgresql/data, meant to be a volume), running initdb first
#   when it holds no cluster; `docker run IMAGE psql ...` (any other command) runs that command.
#   Environment read at initdb: POSTGRES_USER (superuser, default postgres), POSTGRES_PASSWORD
#   (none by default), POSTGRES_HOST_AUTH_METHOD (for TCP clients; default scram-sha-256 with
#   a password, else trust: a test image), POSTGRES_INITDB_ARGS (extra initdb arguments).
set -euo pipefail

tag="${1:-clank-test/postgres:15}"
log() { printf '==> %s\n' "$*" >&2; }

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v mmdebstrap >/dev/null; then
  log "installing mmdebstrap"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mmdebstrap >&2
fi

# Apt sources: the host's own when they are bookworm's (they may point at a local mirror or a
# snapshot), else Debian's mirrors. CLANK_DEBIAN_SOURCES may name a sources file to use instead.
mirrors=()
for f in "${CLANK_DEBIAN_SOURCES:-}" /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  if [ -n "$f" ] && [ -s "$f" ] && grep -Eq '^[^#]*\bbookworm\b' "$f"; then
    mirrors=("$f")
    break
  fi
done
if [ ${#mirrors[@]} -eq 0 ]; then
  mirrors=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
  )
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Runs inside mmdebstrap after every package is installed; $1 is the root filesystem.
cat >"$tmp/customize" <<'HOOK'
#!/bin/sh
set -eu
root="$1"
# postgresql-15's postinst made a "main" cluster; the image makes its own in $PGDATA.
rm -rf "$root/etc/postgresql/15/main" "$root/var/lib/postgresql/15"
# A private key baked into every container is no use to anyone.
rm -f "$root/etc/ssl/private/ssl-cert-snakeoil.key" "$root/etc/ssl/certs/ssl-cert-snakeoil.pem"
rm -rf "$root/usr/share/postgresql/15/man" "$root/var/cache/debconf/"*-old \
  "$root/var/log/"*.log "$root/var/log/apt/"*
# mmdebstrap's own /run cleanup is skipped to keep the socket directory (a server run with
# --user postgres cannot make it); what else is there is a leftover of the build.
find "$root/run" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf --one-file-system {} +
chroot "$root" install -d -o postgres -g postgres -m 2775 /run/postgresql
chroot "$root" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
cat >"$root/usr/local/bin/clank-postgres" <<'EOF'
#!/bin/sh
# Entrypoint of the clank-test/postgres image (scripts/images/postgres.sh in Clank).
# Server mode (no arguments, `postgres ...` or `-c ...`): as root, hands $PGDATA (a fresh
# volume is root's) and the socket directory to postgres and re-runs itself as postgres; as
# postgres, runs initdb when $PGDATA holds no cluster, then execs the server, which becomes
# PID 1 (the image's STOPSIGNAL is SIGINT: postgres' fast shutdown). Any other command is
# exec'ed as given, e.g. `psql -h db -U postgres`.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
[ $# -eq 0 ] && set -- postgres
case "$1" in
  postgres) shift ;;
  -*) ;;
  *) exec "$@" ;;
esac

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres /run/postgresql
  chmod 2775 /run/postgresql
  find "$PGDATA" ! -user postgres -exec chown postgres:postgres {} +
  case "$(stat -c %a "$PGDATA")" in 700|750) ;; *) chmod 0700 "$PGDATA" ;; esac
  HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$0" postgres "$@"
fi

if [ ! -w "$PGDATA" ]; then
  echo "clank-postgres: $PGDATA is not writable by uid $(id -u); start the container as root" \
    "(the image's default) so that it can hand the directory to postgres" >&2
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  else
    auth="${POSTGRES_HOST_AUTH_METHOD:-trust}"
  fi
  pwfile=""
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words
  initdb --pgdata="$PGDATA" --username="${POSTGRES_USER:-postgres}" \
    --auth-local=trust --auth-host="$auth" ${pwfile:+--pwfile="$pwfile"} \
    ${POSTGRES_INITDB_ARGS:-} >&2
  [ -z "$pwfile" ] || rm -f "$pwfile"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" "$@"
EOF
chmod 0755 "$root/usr/local/bin/clank-postgres"
HOOK
chmod 0755 "$tmp/customize"

log "building $tag (mmdebstrap from ${mirrors[*]})"
# mmdebstrap puts its own policy-rc.d (exit 101) in place while it installs and deletes it at
# the end; skipping that and writing ours in the extract hook (before any maintainer script
# runs) keeps daemons from starting during the build and in any later apt-get in the image.
mmdebstrap --variant=minbase \
  --include=ca-certificates,postgresql-15,postgresql-client-15 \
  --skip=chroot/policy-rc.d --skip=cleanup/run \
  --extract-hook='mkdir -p "$1/usr/sbin" && printf "#!/bin/sh\nexit 101\n" >"$1/usr/sbin/policy-rc.d" && chmod 0755 "$1/usr/sbin/policy-rc.d"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook="$tmp/customize" \
  bookworm "$tmp/rootfs.tar" "${mirrors[@]}" >&2

# `docker import --change` refuses STOPSIGNAL (Docker 20.10), so a build on top of the
# imported image (legacy builder: it takes an image id in FROM; no RUN, so nothing runs) adds
# it. The imported image stays as the tag's parent and goes with it on `docker rmi`.
log "importing the root filesystem"
base="$(docker import \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'ENTRYPOINT ["/usr/local/bin/clank-postgres"]' \
  --change 'CMD ["postgres"]' \
  --change 'EXPOSE 5432' \
  "$tmp/rootfs.tar")"
rm -f "$tmp/rootfs.tar"
mkdir "$tmp/context"
printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$base" >"$tmp/context/Dockerfile"
log "configuring the image $tag"
if ! DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$tmp/context" >&2; then
  docker rmi "$base" >/dev/null 2>&1 || true
  exit 1
fi
echo "$tag"
