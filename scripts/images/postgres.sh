#!/usr/bin/env bash
# Builds a PostgreSQL 15 image from Debian bookworm packages, with no registry (lib.sh: mmdebstrap
# makes the root filesystem from the apt mirror, `docker import` loads it and a `docker build`
# with no RUN step adds the stop signal).
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
#   /usr/local/bin/docker-entrypoint.sh is a symbolic link to the entrypoint, as the official
#   image ships one on PATH.
#   Environment read at initdb (each also as NAME_FILE, a file holding the value, for
#   POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB): POSTGRES_USER (superuser, default
#   postgres), POSTGRES_PASSWORD (none by default), POSTGRES_DB (a database owned by
#   POSTGRES_USER, created at initialisation; default POSTGRES_USER), POSTGRES_HOST_AUTH_METHOD
#   (for TCP clients; default scram-sha-256 with a password, else trust: a test image),
#   POSTGRES_INITDB_ARGS (extra initdb arguments). After initdb, a server on the Unix socket
#   only creates POSTGRES_DB and runs the files in /docker-entrypoint-initdb.d (sorted; *.sql
#   through psql on POSTGRES_DB, *.sh executed when executable, else sourced), once.
set -euo pipefail

tag="${1:-clank-test/postgres:15}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
image_begin "$tag"

# The image's customize hook (sh; $root is the root filesystem).
image_customize <<'HOOK'
# postgresql-15's postinst made a "main" cluster; the image makes its own in $PGDATA.
rm -rf "$root/etc/postgresql/15/main" "$root/var/lib/postgresql/15" \
  "$root/usr/share/postgresql/15/man"
# The socket directory (lib.sh's cleanup emptied /run).
chroot "$root" install -d -o postgres -g postgres -m 2775 /run/postgresql
chroot "$root" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
mkdir -p "$root/docker-entrypoint-initdb.d"
# The official image's entrypoint name, on PATH.
ln -s clank-postgres "$root/usr/local/bin/docker-entrypoint.sh"
cat >"$root/usr/local/bin/clank-postgres" <<'EOF'
#!/bin/sh
# Entrypoint of the clank-test/postgres image (scripts/images/postgres.sh in Clank).
# Server mode (no arguments, `postgres ...` or `-c ...`): as root, hands $PGDATA (a fresh
# volume is root's) and the socket directory to postgres and re-runs itself as postgres; as
# postgres, runs initdb when $PGDATA holds no cluster, then execs the server, which becomes
# PID 1 (the image's STOPSIGNAL is SIGINT: postgres' fast shutdown). Any other command is
# exec'ed as given, e.g. `psql -h db -U postgres`. Also installed as docker-entrypoint.sh.
set -eu
self=/usr/local/bin/clank-postgres
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
    "$self" postgres "$@"
fi

if [ ! -w "$PGDATA" ]; then
  echo "clank-postgres: $PGDATA is not writable by uid $(id -u); start the container as root" \
    "(the image's default) so that it can hand the directory to postgres" >&2
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # NAME_FILE names a file holding NAME's value (Docker secrets), as in the official image.
  for name in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB; do
    eval "file=\${${name}_FILE:-}"
    [ -z "$file" ] || eval "$name=\$(cat \"\$file\")"
  done
  POSTGRES_USER="${POSTGRES_USER:-postgres}"
  POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  export POSTGRES_USER POSTGRES_DB
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
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" \
    --auth-local=trust --auth-host="$auth" ${pwfile:+--pwfile="$pwfile"} \
    ${POSTGRES_INITDB_ARGS:-} >&2
  [ -z "$pwfile" ] || rm -f "$pwfile"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

  # A server on the Unix socket only (local connections are trusted) for POSTGRES_DB and the
  # init files.
  pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start >&2
  export PGUSER="$POSTGRES_USER" PGDATABASE=postgres
  psql() { command psql -X -q -v ON_ERROR_STOP=1 --no-password "$@"; }
  psql --set db="$POSTGRES_DB" >&2 <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
  for f in /docker-entrypoint-initdb.d/*; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sql)
        echo "clank-postgres: running $f" >&2
        psql --dbname="$POSTGRES_DB" -f "$f" >&2
        ;;
      *.sh)
        echo "clank-postgres: running $f" >&2
        if [ -x "$f" ]; then
          "$f"
        else
          # shellcheck disable=SC1090 # the caller's script
          . "$f"
        fi
        ;;
      *) echo "clank-postgres: ignoring $f" >&2 ;;
    esac
  done
  unset PGUSER PGDATABASE
  pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop >&2
  echo "clank-postgres: initialised; starting the server" >&2
fi
exec postgres -D "$PGDATA" "$@"
EOF
chmod 0755 "$root/usr/local/bin/clank-postgres"
HOOK

image_build "$tag" postgresql-15,postgresql-client-15 SIGINT \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'ENTRYPOINT ["/usr/local/bin/clank-postgres"]' \
  --change 'CMD ["postgres"]' \
  --change 'EXPOSE 5432'
