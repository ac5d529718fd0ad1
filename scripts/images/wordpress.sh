#!/usr/bin/env bash
# Builds a WordPress 6.1 image (Debian bookworm's `wordpress` package on Apache 2.4 with
# mod_php 8.2) with no registry (lib.sh: mmdebstrap makes the root filesystem from the apt
# mirror, `docker import` loads it and a `docker build` with no RUN step adds the stop signal).
# Prints the image tag on stdout (everything else goes to stderr), so a caller can do
#   tag=$(scripts/images/wordpress.sh)
# Usage: scripts/images/wordpress.sh [TAG]       (default TAG: clank-test/wordpress:6.1)
# A tag already in the engine is reused as is: the build runs once per machine; `docker rmi`
# the tag to rebuild.
#
# The image behaves like the official `wordpress:apache` one:
#   ENTRYPOINT /usr/local/bin/clank-wordpress, CMD apache2-foreground, STOPSIGNAL SIGWINCH
#   (Apache's graceful stop), EXPOSE 80, WORKDIR /var/www/html (the document root, meant to be
#   a volume). At start, when /var/www/html holds no WordPress, the entrypoint copies Debian's
#   /usr/share/wordpress there (symbolic links into other packages resolved, so the volume is
#   self-contained: themes, plugins and uploads live in its wp-content, owned by www-data) and,
#   when there is no wp-config.php, writes one that reads the environment at every request and
#   answers for any Host header (Debian's own wp-config.php, which wants an
#   /etc/wordpress/config-<host>.php per host name, is not used). Then Apache runs in the
#   foreground as PID 1 (children as www-data), its logs on stdout/stderr, mod_rewrite on and
#   .htaccess honoured. Any other command runs as given.
#   Environment (read by wp-config.php at each request, as the official image's is; each also as
#   NAME_FILE, a file holding the value): WORDPRESS_DB_HOST (host[:port], default mysql),
#   WORDPRESS_DB_USER, WORDPRESS_DB_PASSWORD, WORDPRESS_DB_NAME (default wordpress),
#   WORDPRESS_TABLE_PREFIX (default wp_), WORDPRESS_DB_CHARSET, WORDPRESS_DB_COLLATE,
#   WORDPRESS_DEBUG, WORDPRESS_CONFIG_EXTRA (PHP code), WORDPRESS_AUTH_KEY and the other seven
#   keys and salts (random ones are written into wp-config.php otherwise). X-Forwarded-Proto:
#   https from a proxy in front turns HTTPS on.
#   /usr/local/bin/docker-entrypoint.sh is a symbolic link to the entrypoint, as the official
#   image ships one on PATH.
set -euo pipefail

tag="${1:-clank-test/wordpress:6.1}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
image_begin "$tag"

# The image's customize hook (sh; $root is the root filesystem).
image_customize <<'HOOK'
rm -rf "$root/var/www/html" "$root/var/log/apache2/"*
chroot "$root" install -d -o www-data -g www-data -m 0755 /var/www/html
# Apache's logs to the container's output, as the official php:apache image does.
ln -s /dev/stdout "$root/var/log/apache2/access.log"
ln -s /dev/stdout "$root/var/log/apache2/other_vhosts_access.log"
ln -s /dev/stderr "$root/var/log/apache2/error.log"
cat >"$root/etc/apache2/conf-available/clank-wordpress.conf" <<'EOF'
# clank-test/wordpress (scripts/images/wordpress.sh in Clank): WordPress in /var/www/html.
ServerName localhost
DirectoryIndex index.php index.html
<Directory /var/www/html>
    Options FollowSymLinks
    AllowOverride All
    Require all granted
</Directory>
EOF
chroot "$root" a2enconf -q clank-wordpress >/dev/null
chroot "$root" a2enmod -q rewrite expires >/dev/null

mkdir -p "$root/usr/local/share/clank"
cat >"$root/usr/local/share/clank/wp-config.php" <<'EOF'
<?php
/*
 * Written by the entrypoint of clank-test/wordpress (scripts/images/wordpress.sh in Clank), as
 * the official image's wp-config-docker.php: the settings come from the environment at every
 * request, whatever the Host header.
 */
if (!function_exists('getenv_docker')) {
	function getenv_docker($env, $default) {
		if ($fileEnv = getenv($env . '_FILE')) {
			return rtrim(file_get_contents($fileEnv), "\r\n");
		} else if (($val = getenv($env)) !== false) {
			return $val;
		} else {
			return $default;
		}
	}
}

define('DB_NAME', getenv_docker('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', getenv_docker('WORDPRESS_DB_USER', 'example username'));
define('DB_PASSWORD', getenv_docker('WORDPRESS_DB_PASSWORD', 'example password'));
define('DB_HOST', getenv_docker('WORDPRESS_DB_HOST', 'mysql'));
define('DB_CHARSET', getenv_docker('WORDPRESS_DB_CHARSET', 'utf8'));
define('DB_COLLATE', getenv_docker('WORDPRESS_DB_COLLATE', ''));

define('AUTH_KEY',         getenv_docker('WORDPRESS_AUTH_KEY',         '@AUTH_KEY@'));
define('SECURE_AUTH_KEY',  getenv_docker('WORDPRESS_SECURE_AUTH_KEY',  '@SECURE_AUTH_KEY@'));
define('LOGGED_IN_KEY',    getenv_docker('WORDPRESS_LOGGED_IN_KEY',    '@LOGGED_IN_KEY@'));
define('NONCE_KEY',        getenv_docker('WORDPRESS_NONCE_KEY',        '@NONCE_KEY@'));
define('AUTH_SALT',        getenv_docker('WORDPRESS_AUTH_SALT',        '@AUTH_SALT@'));
define('SECURE_AUTH_SALT', getenv_docker('WORDPRESS_SECURE_AUTH_SALT', '@SECURE_AUTH_SALT@'));
define('LOGGED_IN_SALT',   getenv_docker('WORDPRESS_LOGGED_IN_SALT',   '@LOGGED_IN_SALT@'));
define('NONCE_SALT',       getenv_docker('WORDPRESS_NONCE_SALT',       '@NONCE_SALT@'));

$table_prefix = getenv_docker('WORDPRESS_TABLE_PREFIX', 'wp_');

define('WP_DEBUG', !!getenv_docker('WORDPRESS_DEBUG', ''));

// Behind a proxy that terminates TLS.
if (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) && strpos($_SERVER['HTTP_X_FORWARDED_PROTO'], 'https') !== false) {
	$_SERVER['HTTPS'] = 'on';
}

if ($configExtra = getenv_docker('WORDPRESS_CONFIG_EXTRA', '')) {
	eval($configExtra);
}

if (!defined('ABSPATH')) {
	define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
EOF

cat >"$root/usr/local/bin/clank-wordpress" <<'EOF'
#!/bin/sh
# Entrypoint of the clank-test/wordpress image (scripts/images/wordpress.sh in Clank).
# Server mode (no arguments or `apache2-foreground [apache options]`): puts WordPress into
# /var/www/html when it holds none, writes its wp-config.php when missing, then execs Apache in
# the foreground (PID 1; SIGWINCH stops it gracefully). Any other command is exec'ed as given.
# Also installed as docker-entrypoint.sh.
set -eu
[ $# -eq 0 ] && set -- apache2-foreground
case "$1" in
  apache2-foreground) shift ;;
  *) exec "$@" ;;
esac

say() { echo "clank-wordpress: $*" >&2; }
docroot=/var/www/html
mkdir -p "$docroot"
cd "$docroot"
if [ ! -e index.php ] && [ ! -e wp-includes/version.php ]; then
  say "WordPress not found in $docroot: copying it from /usr/share/wordpress"
  # --dereference: Debian links files of other packages (getid3, underscore, ...) into it.
  cp -R --dereference /usr/share/wordpress/. "$docroot/"
  rm -f "$docroot/wp-config.php"
  chown -R www-data:www-data "$docroot"
fi
if [ ! -s wp-config.php ]; then
  say "writing $docroot/wp-config.php (settings from the WORDPRESS_* environment)"
  cp /usr/local/share/clank/wp-config.php wp-config.php.tmp
  for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT \
    LOGGED_IN_SALT NONCE_SALT; do
    value="$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')"
    sed -i "s|@$key@|$value|" wp-config.php.tmp
  done
  chown www-data:www-data wp-config.php.tmp
  mv wp-config.php.tmp wp-config.php
fi

# What the official php:apache image's apache2-foreground does.
set +u
: "${APACHE_CONFDIR:=/etc/apache2}"
: "${APACHE_ENVVARS:=$APACHE_CONFDIR/envvars}"
# shellcheck disable=SC1090 # Debian's envvars
[ ! -f "$APACHE_ENVVARS" ] || . "$APACHE_ENVVARS"
set -u
mkdir -p "${APACHE_RUN_DIR:-/var/run/apache2}" "${APACHE_LOCK_DIR:-/var/lock/apache2}"
rm -f "${APACHE_PID_FILE:-/var/run/apache2/apache2.pid}"
exec apache2 -DFOREGROUND "$@"
EOF
chmod 0755 "$root/usr/local/bin/clank-wordpress"
# The official image's entrypoint name, on PATH.
ln -s clank-wordpress "$root/usr/local/bin/docker-entrypoint.sh"
HOOK

image_build "$tag" wordpress,wordpress-theme-twentytwentythree,apache2,libapache2-mod-php,php-mysql SIGWINCH \
  --change 'ENV LANG=C.UTF-8' \
  --change 'WORKDIR /var/www/html' \
  --change 'ENTRYPOINT ["/usr/local/bin/clank-wordpress"]' \
  --change 'CMD ["apache2-foreground"]' \
  --change 'EXPOSE 80'
