#!/usr/bin/env bash
# Builds a Redis 7 image from Debian bookworm packages, with no registry (lib.sh: mmdebstrap
# makes the root filesystem from the apt mirror, `docker import` loads it and a `docker build`
# with no RUN step adds the stop signal).
# Prints the image tag on stdout (everything else goes to stderr), so a caller can do
#   tag=$(scripts/images/redis.sh)
# Usage: scripts/images/redis.sh [TAG]           (default TAG: clank-test/redis:7)
# A tag already in the engine is reused as is: the build runs once per machine; `docker rmi`
# the tag to rebuild.
#
# The image behaves like the official `redis` one (run as root; the entrypoint drops to the
# redis user):
#   ENTRYPOINT /usr/local/bin/clank-redis, CMD redis-server, STOPSIGNAL SIGTERM (redis saves
#   and exits), EXPOSE 6379, WORKDIR /data (meant to be a volume; not declared one, so that no
#   anonymous volume is left behind; handed to redis at start).
#   `docker run IMAGE`, `docker run IMAGE redis-server --requirepass X --appendonly yes`,
#   `docker run IMAGE --appendonly yes` or `docker run IMAGE /path/redis.conf [--opt ...]` run
#   the server in the foreground with no configuration file but the one given (so Redis'
#   built-in defaults: port 6379 on every interface, `dir` the working directory /data, no
#   daemonize) and `--protected-mode no` ahead of the caller's options (the official image
#   builds Redis with protected mode off); any other command (`redis-cli ...`) runs as given.
#   Debian's /etc/redis/redis.conf (daemonize, loopback only) is left unused.
#   /usr/local/bin/docker-entrypoint.sh is a symbolic link to the entrypoint, as the official
#   image ships one on PATH: a command such as
#   `sh -c 'exec docker-entrypoint.sh redis-server --requirepass "$REDIS_PASSWORD"'` runs as
#   root through the entrypoint, and the inner call drops to redis and execs redis-server, which
#   ends as PID 1.
set -euo pipefail

tag="${1:-clank-test/redis:7}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
image_begin "$tag"

# The image's customize hook (sh; $root is the root filesystem).
image_customize <<'HOOK'
rm -rf "$root/var/lib/redis/"* "$root/var/log/redis/"*
chroot "$root" install -d -o redis -g redis -m 0755 /data
# The official image's entrypoint name, on PATH.
ln -s clank-redis "$root/usr/local/bin/docker-entrypoint.sh"
cat >"$root/usr/local/bin/clank-redis" <<'EOF'
#!/bin/sh
# Entrypoint of the clank-test/redis image (scripts/images/redis.sh in Clank).
# Server mode (no arguments, `redis-server ...`, `-...` options or a `*.conf` file first): as
# root, hands the working directory (/data, a fresh volume is root's) to redis and re-runs
# itself as redis; then execs redis-server (PID 1) with `--protected-mode no` ahead of the
# caller's options. Any other command is exec'ed as given, e.g. `redis-cli -a X ping`.
# Also installed as docker-entrypoint.sh.
set -eu
[ $# -eq 0 ] && set -- redis-server
case "$1" in
  redis-server) shift ;;
  -* | *.conf) ;;
  *) exec "$@" ;;
esac

if [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis:redis {} +
  HOME=/data exec setpriv --reuid=redis --regid=redis --init-groups \
    /usr/local/bin/clank-redis redis-server "$@"
fi

# redis-server takes a configuration file only as its first argument; options follow it.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  conf="$1"
  shift
  exec redis-server "$conf" --protected-mode no "$@"
fi
exec redis-server --protected-mode no "$@"
EOF
chmod 0755 "$root/usr/local/bin/clank-redis"
HOOK

image_build "$tag" redis-server,redis-tools SIGTERM \
  --change 'ENV LANG=C.UTF-8' \
  --change 'WORKDIR /data' \
  --change 'ENTRYPOINT ["/usr/local/bin/clank-redis"]' \
  --change 'CMD ["redis-server"]' \
  --change 'EXPOSE 6379'
