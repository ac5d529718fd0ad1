#!/bin/sh
# Installs the Clank agent on a Debian/Ubuntu server and enrolls it with a control plane.
#
# `clank server add NAME` (or `clank server join-token NAME`) prints the join command:
#   clank-agent --control-plane https://<this-host>:<agent port> --fingerprint sha256:... --join-token clank-join-...
# Give this script the same arguments (the leading `clank-agent` may be pasted too), with the
# control plane's real address in place of <this-host>:<agent port>:
#   sudo sh install-agent.sh --deb ./clank-agent_0.1.0-1_amd64.deb \
#     --control-plane https://clank.example.com:7443 --fingerprint sha256:... --join-token clank-join-...
#
# What it does, in order (nothing is changed before the checks pass):
#   1. checks the arguments, and that it runs as root;
#   2. checks Docker: the `docker` command and a reachable engine. When either is missing it
#      explains how to install Debian's docker.io and exits 3, or, with --install-docker,
#      installs docker.io with apt-get (and starts it where systemd runs);
#   3. installs the clank-agent package from --deb (a .deb file, or an http(s) URL it downloads)
#      with apt-get (dpkg -i where apt-get is missing); without --deb, an installed clank-agent
#      is used as is;
#   4. writes the enrollment to /etc/clank/agent.env (root-only, mode 0600): the variables the
#      agent reads (CLANK_CONTROL_PLANE, CLANK_CONTROL_PLANE_FINGERPRINT, CLANK_JOIN_TOKEN, and
#      CLANK_AGENT_PROXY_LISTEN with --proxy-listen). The token is needed on the first start
#      only; the identity it buys is kept in /var/lib/clank-agent;
#   5. enables and (re)starts clank-agent.service when systemd is running; otherwise (a
#      container, a chroot) prints the command that starts the agent as the unit would.
#
# Options:
#   --deb FILE|URL        the clank-agent .deb to install
#   --install-docker      install Debian's docker.io when Docker is missing
#   --control-plane URL   the control plane's agent endpoint (https://host:port, or http://)
#   --fingerprint FP      sha256:<64 hex digits>, the endpoint certificate's pin (https)
#   --join-token TOKEN    the one-time join token
#   --proxy-listen ADDR   where this server's proxy serves routed services (e.g. 0.0.0.0:80)
#   --no-start            write the configuration but do not enable or start the service
#   -h, --help            this text
# Exit status: 0 done; 2 bad arguments; 3 Docker missing or unreachable; 4 installation failed.
#
# Environment (for tests): CLANK_AGENT_ENV_FILE (default /etc/clank/agent.env),
# CLANK_AGENT_UNIT_FILE (default: the installed clank-agent.service).
set -eu

say() { printf 'install-agent: %s\n' "$*" >&2; }
die() {
    code=$1
    shift
    say "$*"
    exit "$code"
}
usage() {
    sed -n '2,/^set -eu$/{/^set -eu$/d;s/^# \{0,1\}//;p}' "$0"
}

deb=""
install_docker=""
control_plane=""
fingerprint=""
join_token=""
proxy_listen=""
start=1
env_file="${CLANK_AGENT_ENV_FILE:-/etc/clank/agent.env}"

# `--opt value` and `--opt=value`; the leading `clank-agent` of a pasted join command is skipped.
need_value() {
    [ "$2" -ge 2 ] || die 2 "$1 needs a value (see --help)"
}
while [ $# -gt 0 ]; do
    case "$1" in
        clank-agent | */clank-agent) shift ;;
        --) shift ;;
        --deb) need_value "$1" $#; deb=$2; shift 2 ;;
        --deb=*) deb=${1#*=}; shift ;;
        --install-docker) install_docker=1; shift ;;
        --control-plane) need_value "$1" $#; control_plane=$2; shift 2 ;;
        --control-plane=*) control_plane=${1#*=}; shift ;;
        --fingerprint) need_value "$1" $#; fingerprint=$2; shift 2 ;;
        --fingerprint=*) fingerprint=${1#*=}; shift ;;
        --join-token) need_value "$1" $#; join_token=$2; shift 2 ;;
        --join-token=*) join_token=${1#*=}; shift ;;
        --proxy-listen) need_value "$1" $#; proxy_listen=$2; shift 2 ;;
        --proxy-listen=*) proxy_listen=${1#*=}; shift ;;
        --no-start) start=""; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die 2 "unknown argument \`$1\` (see --help)" ;;
    esac
done

# --- 1. Arguments: checked here, then written as data (never run as shell code). ----------
[ -n "$control_plane" ] || die 2 "--control-plane is required (the join command \`clank server add\` prints)"
[ -n "$join_token" ] || die 2 "--join-token is required (the join command \`clank server add\` prints; a fresh one: \`clank server join-token NAME\`)"
case "$control_plane" in
    *'<'* | *'>'*)
        die 2 "--control-plane \`$control_plane\` still holds a placeholder: put the control plane's address and agent port (CLANK_AGENT_LISTEN) in it, e.g. https://clank.example.com:7443" ;;
esac
case "$control_plane" in
    http://?* | https://?*) ;;
    *) die 2 "--control-plane \`$control_plane\` must be an http:// or https:// URL" ;;
esac
# Letters, digits and the URL characters a host:port/path needs; nothing a shell, systemd's
# EnvironmentFile parser or a line break would read differently.
case "$control_plane" in
    *[!A-Za-z0-9.:/_~%\[\]-]*) die 2 "--control-plane \`$control_plane\` holds characters a URL of host:port does not" ;;
esac
case "$join_token" in
    *[!A-Za-z0-9._~-]*) die 2 "--join-token holds characters a join token does not (expected clank-join-...)" ;;
esac
if [ -n "$fingerprint" ]; then
    hex=${fingerprint#sha256:}
    case "$fingerprint" in
        sha256:*) ;;
        *) die 2 "--fingerprint must look like sha256:<64 hex digits>" ;;
    esac
    case "$hex" in
        *[!0-9a-fA-F]*) die 2 "--fingerprint must look like sha256:<64 hex digits>" ;;
    esac
    [ ${#hex} -eq 64 ] || die 2 "--fingerprint must look like sha256:<64 hex digits> (got ${#hex} digits)"
fi
case "$control_plane" in
    https://*) [ -n "$fingerprint" ] || say "warning: no --fingerprint for an https control plane: the agent will have no certificate to pin (the join command prints one)" ;;
esac
if [ -n "$proxy_listen" ]; then
    case "$proxy_listen" in
        *[!0-9A-Fa-f.:\[\]]* | '') die 2 "--proxy-listen \`$proxy_listen\` must be ADDRESS:PORT, e.g. 0.0.0.0:80" ;;
    esac
fi
[ "$(id -u)" -eq 0 ] || die 2 "run it as root (sudo sh $0 ...): it installs a package and writes /etc/clank"

# --- 2. Docker ------------------------------------------------------------------------------
docker_ok() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}
systemd_running() {
    [ -d /run/systemd/system ]
}
if ! docker_ok; then
    if [ -n "$install_docker" ]; then
        command -v apt-get >/dev/null 2>&1 || die 3 "--install-docker needs apt-get (Debian/Ubuntu); install Docker yourself and run this again"
        say "installing Debian's docker.io with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || die 3 "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io || die 3 "apt-get install docker.io failed"
        if systemd_running; then
            systemctl enable --now docker.service >/dev/null 2>&1 || true
        fi
        docker_ok || die 3 "docker.io is installed but its engine does not answer (\`docker info\`); start it (systemctl start docker) and run this again"
    elif ! command -v docker >/dev/null 2>&1; then
        say "Docker is required: the agent runs this server's workloads through the local Docker engine,"
        say "and there is no \`docker\` command here. Install Debian's engine:"
        say "    sudo apt-get update && sudo apt-get install docker.io"
        say "(or Docker's own docker-ce), or run this script again with --install-docker."
        exit 3
    else
        say "Docker is required, and its engine does not answer here (\`docker info\` failed):"
        docker info 2>&1 | sed -n '1,5s/^/    /p' >&2 || true
        say "start it (sudo systemctl enable --now docker), or run this script again with --install-docker."
        exit 3
    fi
fi
say "Docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo reachable)"

# --- 3. The package ---------------------------------------------------------------------------
tmp=""
cleanup() {
    if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
if [ -n "$deb" ]; then
    case "$deb" in
        http://* | https://*)
            tmp=$(mktemp -d)
            file="$tmp/clank-agent.deb"
            say "downloading $deb"
            if command -v curl >/dev/null 2>&1; then
                curl -fsSL --proto '=http,https' -o "$file" -- "$deb" || die 4 "download of $deb failed"
            elif command -v wget >/dev/null 2>&1; then
                wget -q -O "$file" -- "$deb" || die 4 "download of $deb failed"
            else
                die 4 "neither curl nor wget is installed to download $deb: download it and pass the file"
            fi
            ;;
        *)
            [ -f "$deb" ] || die 2 "--deb \`$deb\`: no such file"
            # apt-get takes a local package only as a path with a slash in it.
            case "$deb" in
                /*) file=$deb ;;
                *) file="$(pwd)/$deb" ;;
            esac
            ;;
    esac
    pkg=$(dpkg-deb --field "$file" Package 2>/dev/null) || die 4 "\`$deb\` is not a Debian package"
    [ "$pkg" = clank-agent ] || die 4 "\`$deb\` is the package \`$pkg\`, not clank-agent"
    # shellcheck disable=SC2016 # dpkg-deb's own ${Field} syntax
    say "installing $(dpkg-deb --show --showformat='${Package} ${Version}' "$file")"
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$file" >&2 || die 4 "apt-get install $deb failed"
    else
        dpkg -i "$file" >&2 || die 4 "dpkg -i $deb failed"
    fi
elif ! command -v clank-agent >/dev/null 2>&1; then
    die 2 "clank-agent is not installed: pass the package with --deb FILE|URL"
fi
agent_version=$(clank-agent --version 2>/dev/null) || die 4 "the installed clank-agent does not run (clank-agent --version failed)"
say "installed: $agent_version"

# --- 4. The enrollment ------------------------------------------------------------------------
dir=$(dirname "$env_file")
mkdir -p "$dir"
old_umask=$(umask)
umask 077
{
    printf '# The enrollment of clank-agent.service (systemd EnvironmentFile: KEY=value lines),\n'
    # shellcheck disable=SC2016 # backquotes for the reader
    printf '# written by install-agent.sh from the join command `clank server add` printed.\n'
    printf '# The join token is used on the first start only; the identity it buys is kept in\n'
    printf '# /var/lib/clank-agent. Re-enroll with a fresh token: clank server join-token NAME.\n'
    printf 'CLANK_CONTROL_PLANE=%s\n' "$control_plane"
    if [ -n "$fingerprint" ]; then
        printf 'CLANK_CONTROL_PLANE_FINGERPRINT=%s\n' "$fingerprint"
    fi
    printf 'CLANK_JOIN_TOKEN=%s\n' "$join_token"
    if [ -n "$proxy_listen" ]; then
        printf 'CLANK_AGENT_PROXY_LISTEN=%s\n' "$proxy_listen"
    fi
} >"$env_file.tmp"
umask "$old_umask"
chmod 0600 "$env_file.tmp"
chown 0:0 "$env_file.tmp" 2>/dev/null || true
mv -f "$env_file.tmp" "$env_file"
say "wrote $env_file (control plane $control_plane)"

# --- 5. The service ---------------------------------------------------------------------------
unit_file=${CLANK_AGENT_UNIT_FILE:-}
if [ -z "$unit_file" ]; then
    for f in /etc/systemd/system/clank-agent.service /lib/systemd/system/clank-agent.service \
        /usr/lib/systemd/system/clank-agent.service; do
        if [ -f "$f" ]; then
            unit_file=$f
            break
        fi
    done
fi
if [ -z "$start" ]; then
    say "not started (--no-start): systemctl enable --now clank-agent"
elif systemd_running; then
    systemctl daemon-reload
    systemctl enable clank-agent.service >/dev/null 2>&1 || die 4 "systemctl enable clank-agent failed"
    systemctl restart clank-agent.service || die 4 "clank-agent did not start: journalctl -u clank-agent"
    say "clank-agent.service is enabled and started; follow it with: journalctl -u clank-agent -f"
else
    exec_start=""
    user=""
    if [ -n "$unit_file" ]; then
        exec_start=$(sed -n 's/^ExecStart=//p' "$unit_file" | tail -n 1)
        user=$(sed -n 's/^User=//p' "$unit_file" | tail -n 1)
    fi
    : "${exec_start:=/usr/bin/clank-agent}"
    : "${user:=clank-agent}"
    say "systemd is not running here, so nothing was started. Start the agent as its unit would:"
    printf "sh -ac '. %s; export CLANK_AGENT_STATE=/var/lib/clank-agent; exec setpriv --reuid=%s --regid=%s --init-groups %s'\n" \
        "$env_file" "$user" "$user" "$exec_start"
fi
