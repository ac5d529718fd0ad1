#!/usr/bin/env bash
# Builds a MariaDB 10.11 image from Debian bookworm packages, with no registry (lib.sh:
# mmdebstrap makes the root filesystem from the apt mirror, `docker import` loads it and a
# `docker build` with no RUN step adds the stop signal).
# Prints the image tag on stdout (everything else goes to stderr), so a caller can do
#   tag=$(scripts/images/mariadb.sh)
# Usage: scripts/images/mariadb.sh [TAG]         (default TAG: clank-test/mariadb:10.11)
# A tag already in the engine is reused as is: the build runs once per machine; `docker rmi`
# the tag to rebuild.
#
# The image (run as root; the entrypoint drops to the mysql user):
#   ENTRYPOINT /usr/local/bin/clank-mariadb, CMD mariadbd, STOPSIGNAL SIGTERM (mariadbd, PID 1,
#   shuts down cleanly on it), EXPOSE 3306; the server listens on 0.0.0.0:3306 (and the socket
#   /run/mysqld/mysqld.sock), skips name resolution and logs to stderr.
#   `docker run IMAGE` or `docker run IMAGE --option=value` runs the server on /var/lib/mysql
#   (meant to be a volume); when that holds no database yet, it runs mariadb-install-db, then
#   a server without networking to apply the environment below and the files in
#   /docker-entrypoint-initdb.d (*.sql, *.sh; sorted), once. Any other command
#   (`mariadb -uroot -pX ...`) runs as given.
#   Environment read at initialisation, as the official `mariadb` image does (each MARIADB_ name
#   also read as MYSQL_; each value also from a file named by NAME_FILE):
#   MARIADB_ROOT_PASSWORD (root@localhost and root@MARIADB_ROOT_HOST, default '%'), or
#   MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 (root with no password), or
#   MARIADB_RANDOM_ROOT_PASSWORD=1 (printed on stderr) — one is required, as there;
#   MARIADB_DATABASE (created), MARIADB_USER + MARIADB_PASSWORD (created at '%', with every
#   privilege on MARIADB_DATABASE). Not supported: MARIADB_INITDB_SKIP_TZINFO (time zone tables
#   are never loaded), MARIADB_AUTO_UPGRADE, MARIADB_MYSQL_LOCALHOST_USER, MARIADB_REPLICATION_*,
#   *.sql.gz / *.sql.xz / *.sql.zst init files.
#   /usr/local/bin/docker-entrypoint.sh is a symbolic link to the entrypoint, as the official
#   image ships one on PATH.
set -euo pipefail

tag="${1:-clank-test/mariadb:10.11}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
image_begin "$tag"

# The image's customize hook (sh; $root is the root filesystem).
image_customize <<'HOOK'
# mariadb-server's postinst made a database; the image makes its own in /var/lib/mysql.
rm -rf "$root/var/lib/mysql" "$root/var/log/mysql/"*
chroot "$root" install -d -o mysql -g mysql -m 0755 /var/lib/mysql /run/mysqld
mkdir -p "$root/docker-entrypoint-initdb.d"
# The official image's entrypoint name, on PATH.
ln -s clank-mariadb "$root/usr/local/bin/docker-entrypoint.sh"
# Read after Debian's 50-server.cnf (bind-address = 127.0.0.1), so it wins.
cat >"$root/etc/mysql/mariadb.conf.d/99-clank.cnf" <<'EOF'
# clank-test/mariadb (scripts/images/mariadb.sh in Clank): a server in a container.
[mariadbd]
bind-address = 0.0.0.0
port = 3306
skip-name-resolve
socket = /run/mysqld/mysqld.sock
EOF
cat >"$root/usr/local/bin/clank-mariadb" <<'EOF'
#!/bin/sh
# Entrypoint of the clank-test/mariadb image (scripts/images/mariadb.sh in Clank).
# Server mode (no arguments, `mariadbd ...`, `mysqld ...` or `-...` options): as root, hands
# the data directory (a fresh volume is root's) and the socket directory to mysql and re-runs
# itself as mysql; as mysql, initialises the data directory when it holds no database, then
# execs mariadbd (PID 1; SIGTERM shuts it down cleanly). Any other command is exec'ed as given.
# Also installed as docker-entrypoint.sh.
set -eu
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock
[ $# -eq 0 ] && set -- mariadbd
case "$1" in
  mariadbd | mysqld) shift ;;
  -*) ;;
  *) exec "$@" ;;
esac

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$datadir" /run/mysqld
  find "$datadir" /run/mysqld \! -user mysql -exec chown mysql:mysql {} +
  HOME=/var/lib/mysql exec setpriv --reuid=mysql --regid=mysql --init-groups \
    /usr/local/bin/clank-mariadb mariadbd "$@"
fi

say() { echo "clank-mariadb: $*" >&2; }
# A string for a '...' SQL literal / a `...` SQL identifier.
lit() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
# shellcheck disable=SC2016 # a literal backquote
ident() { printf '%s' "$1" | sed -e 's/`/``/g'; }
# NAME_FILE names a file holding NAME's value (Docker secrets), as in the official image.
for name in MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD MARIADB_ROOT_HOST MYSQL_ROOT_HOST \
  MARIADB_DATABASE MYSQL_DATABASE MARIADB_USER MYSQL_USER MARIADB_PASSWORD MYSQL_PASSWORD; do
  eval "file=\${${name}_FILE:-}"
  [ -z "$file" ] || eval "$name=\$(cat \"\$file\")"
done

if [ ! -d "$datadir/mysql" ]; then
  root_pw="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
  allow_empty="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
  random="${MARIADB_RANDOM_ROOT_PASSWORD:-${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
  database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
  user="${MARIADB_USER:-${MYSQL_USER:-}}"
  password="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"
  root_host="${MARIADB_ROOT_HOST:-${MYSQL_ROOT_HOST:-%}}"
  if [ -z "$root_pw" ] && [ -z "$allow_empty" ] && [ -z "$random" ]; then
    say "the database is uninitialized and no root password option is given: set one of"
    say "MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD"
    exit 1
  fi
  if [ -z "$root_pw" ] && [ -n "$random" ]; then
    root_pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    say "GENERATED ROOT PASSWORD: $root_pw"
  fi
  if [ -n "$user" ] && [ "$user" = root ]; then
    say "MARIADB_USER=root is refused (root is made from MARIADB_ROOT_PASSWORD)"
    exit 1
  fi

  say "initialising $datadir"
  mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --skip-log-bin >&2
  mariadbd --datadir="$datadir" --skip-networking --socket="$socket" --skip-log-bin "$@" &
  pid=$!
  i=0
  until mariadb-admin --socket="$socket" -uroot --silent ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 60 ] || ! kill -0 "$pid" 2>/dev/null; then
      say "the initialisation server did not start"
      exit 1
    fi
    sleep 1
  done

  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    # Only root@localhost stays of what mariadb-install-db made (it also adds root at the
    # host name, 127.0.0.1 and ::1).
    echo "DELETE FROM mysql.global_priv WHERE user <> 'mariadb.sys' AND NOT (user = 'root' AND host = 'localhost');"
    echo "DELETE FROM mysql.proxies_priv WHERE NOT (user = 'root' AND host = 'localhost');"
    echo "FLUSH PRIVILEGES;"
    pw="$(lit "$root_pw")"
    [ -z "$root_pw" ] || echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';"
    if [ "$root_host" != localhost ]; then
      rh="$(lit "$root_host")"
      echo "CREATE USER 'root'@'$rh' IDENTIFIED BY '$pw';"
      echo "GRANT ALL ON *.* TO 'root'@'$rh' WITH GRANT OPTION;"
      echo "GRANT PROXY ON ''@'%' TO 'root'@'$rh' WITH GRANT OPTION;"
    fi
    [ -z "$database" ] || echo "CREATE DATABASE IF NOT EXISTS \`$(ident "$database")\`;"
    if [ -n "$user" ]; then
      echo "CREATE USER '$(lit "$user")'@'%' IDENTIFIED BY '$(lit "$password")';"
      [ -z "$database" ] ||
        echo "GRANT ALL ON \`$(ident "$database")\`.* TO '$(lit "$user")'@'%';"
    fi
  } | mariadb --protocol=socket --socket="$socket" -uroot >&2

  for f in /docker-entrypoint-initdb.d/*; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sql)
        say "running $f"
        MYSQL_PWD="$root_pw" mariadb --protocol=socket --socket="$socket" -uroot \
          ${database:+"$database"} <"$f" >&2
        ;;
      *.sh)
        say "running $f"
        # shellcheck disable=SC1090 # the caller's script
        . "$f"
        ;;
      *) say "ignoring $f" ;;
    esac
  done

  kill -TERM "$pid"
  wait "$pid" || true
  say "initialised; starting the server"
fi
exec mariadbd --datadir="$datadir" "$@"
EOF
chmod 0755 "$root/usr/local/bin/clank-mariadb"
HOOK

image_build "$tag" mariadb-server,mariadb-client SIGTERM \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENTRYPOINT ["/usr/local/bin/clank-mariadb"]' \
  --change 'CMD ["mariadbd"]' \
  --change 'EXPOSE 3306'
