#!/usr/bin/env bash
# The checks scripts/test-debs runs inside a clean Debian container (packaging/test/image.sh:
# minbase + adduser, curl and systemd's files, systemd not running; no Docker; network: loopback
# only). /debs holds the four packages, /src/packaging the installer. Run as root.
#
#   1. dpkg -i clank, clank-daemon, clank-proxy (their Depends met by the image: nothing else
#      is fetched); users, groups, directories, conffiles, enabled links, `systemd-analyze
#      verify` of the units; `clank --version`.
#   2. the daemon: its unit's ExecStart, run as the unit's User with the unit's Environment and
#      EnvironmentFile (as systemd would, minus the sandbox), answers /v1/health on loopback,
#      keeps its data in /var/lib/clank and starts its proxy; agents' endpoint on (TLS).
#   3. install-agent.sh: refuses clearly without Docker and with a Docker whose engine does not
#      answer (nothing installed or written); refuses a join command with its placeholder left
#      in; with a (fake) working Docker, installs the clank-agent package from /debs and writes
#      /etc/clank/agent.env from the join command `clank server add` printed.
#   4. the agent's ExecStart, the same way: it enrolls with the daemon through the pinned TLS
#      endpoint (the server shows up as enrolled), then stops because there is no Docker engine,
#      saying so, with the exit status the unit does not restart on.
#   5. clank-proxy's ExecStart serves /healthz on its admin listener and stops cleanly on the
#      unit's KillSignal.
#   6. the daemon stops cleanly on SIGTERM; dpkg -i over the installed packages (the upgrade path)
#      keeps an edited conffile; dpkg --purge of all four runs its maintainer scripts without
#      systemd and keeps the data.
set -euo pipefail

step() { printf '\n--> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() {
    printf '\nDEB TEST FAILED: %s\n' "$*" >&2
    exit 1
}
unit_path() { echo "/lib/systemd/system/$1"; }

# The last value of KEY= in a unit file (the [Service] keys these units set once).
unit_value() {
    sed -n "s/^$2=//p" "$(unit_path "$1")" | tail -n 1
}

# Runs a unit's ExecStart the way systemd would, minus the sandbox: as its User/Group (with
# their supplementary groups) and AmbientCapabilities, in its WorkingDirectory, with a clean
# environment holding PATH, HOME, USER, the unit's Environment= lines and its EnvironmentFile
# (later ones win, as in systemd). Prints nothing; runs in the foreground (callers add &).
run_unit() {
    local unit=$1 file user group workdir exec_start caps line env_file optional
    file=$(unit_path "$unit")
    user=$(unit_value "$unit" User)
    group=$(unit_value "$unit" Group)
    workdir=$(unit_value "$unit" WorkingDirectory)
    exec_start=$(unit_value "$unit" ExecStart)
    caps=$(unit_value "$unit" AmbientCapabilities)
    [ -n "$user" ] && [ -n "$exec_start" ] || fail "$unit has no User= or ExecStart="
    local home
    home=$(getent passwd "$user" | cut -d: -f6)
    local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        "HOME=$home" "USER=$user" "LOGNAME=$user")
    while IFS= read -r line; do
        env+=("$line")
    done < <(sed -n 's/^Environment=//p' "$file")
    while IFS= read -r env_file; do
        optional=""
        case "$env_file" in -*) optional=1; env_file=${env_file#-} ;; esac
        if [ ! -f "$env_file" ]; then
            [ -n "$optional" ] || fail "$unit: EnvironmentFile $env_file is missing"
            continue
        fi
        while IFS= read -r line; do
            case "$line" in '' | '#'* | ';'*) continue ;; esac
            env+=("$line")
        done <"$env_file"
    done < <(sed -n 's/^EnvironmentFile=//p' "$file")
    local setpriv=(setpriv "--reuid=$user" "--regid=${group:-$user}" --init-groups)
    if [ -n "$caps" ]; then
        local c list=""
        for c in $caps; do
            c=${c#CAP_}
            list="$list,+${c,,}"
        done
        setpriv+=("--inh-caps=${list#,}" "--ambient-caps=${list#,}")
    fi
    local argv
    read -r -a argv <<<"$exec_start"
    cd "${workdir:-/}"
    exec "${setpriv[@]}" env -i "${env[@]}" "${argv[@]}"
}

# Waits up to ~20 s for URL to answer 2xx.
wait_http() {
    local url=$1
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# --- 1. The packages --------------------------------------------------------------------------
step "dpkg -i clank, clank-daemon, clank-proxy (no network: the image meets their Depends)"
shopt -s nullglob
debs=(/debs/*.deb)
[ ${#debs[@]} -eq 4 ] || fail "expected 4 packages in /debs, found ${#debs[@]}"
agent_deb=""
others=()
for d in "${debs[@]}"; do
    case "$(dpkg-deb --field "$d" Package)" in
        clank-agent) agent_deb=$d ;;
        *) others+=("$d") ;;
    esac
    printf '    %s  %s  Depends: %s\n' "$(basename "$d")" "$(du -h "$d" | cut -f1)" \
        "$(dpkg-deb --field "$d" Depends)"
done
[ -n "$agent_deb" ] || fail "no clank-agent package in /debs"
dpkg -i "${others[@]}" >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i failed"; }
for p in clank clank-daemon clank-proxy; do
    [ "$(dpkg-query -W -f='${Status}' "$p")" = "install ok installed" ] || fail "$p is not installed"
done
ok "installed: $(dpkg-query -W -f='${Package} ${Version}  ' clank clank-daemon clank-proxy)"

id -nG clank | grep -qw docker || fail "user clank is not in the docker group"
id clank-proxy >/dev/null || fail "no clank-proxy user"
[ "$(getent passwd clank | cut -d: -f7)" = /usr/sbin/nologin ] || fail "clank has a login shell"
[ "$(stat -c '%U:%G %a' /var/lib/clank)" = "clank:clank 750" ] || fail "/var/lib/clank: $(stat -c '%U:%G %a' /var/lib/clank)"
[ "$(stat -c '%U:%G' /var/lib/clank-workloads)" = "clank:clank" ] || fail "/var/lib/clank-workloads is not clank's"
ok "users clank (groups: $(id -nG clank)) and clank-proxy; /var/lib/clank{,-workloads}, /var/lib/clank-proxy"

dpkg-query -W -f='${Conffiles}\n' clank-daemon | grep -q ' /etc/default/clank-daemon ' || fail "/etc/default/clank-daemon is not a conffile"
dpkg-query -W -f='${Conffiles}\n' clank-proxy | grep -q ' /etc/clank/proxy.json ' || fail "/etc/clank/proxy.json is not a conffile"
ok "conffiles: /etc/default/clank-daemon, /etc/default/clank-proxy, /etc/clank/proxy.json"

[ -L /etc/systemd/system/multi-user.target.wants/clank-daemon.service ] || fail "clank-daemon.service was not enabled"
[ ! -e /etc/systemd/system/multi-user.target.wants/clank-proxy.service ] || fail "clank-proxy.service was enabled at installation"
ok "clank-daemon.service enabled (deb-systemd-helper), clank-proxy.service not; nothing started (no systemd running)"

clank_version=$(clank --version) || fail "clank --version failed"
[[ "$clank_version" == "clank "* ]] || fail "clank --version said: $clank_version"
ok "clank --version: $clank_version"
clank-daemon --help | grep -q CLANK_LISTEN || fail "clank-daemon --help"

# --- 2. The daemon, as its unit runs it ------------------------------------------------------
step "clank-daemon: the unit's ExecStart as its User, with its Environment"
# An admin turning on the agents' endpoint in the daemon's environment file.
echo 'CLANK_AGENT_LISTEN=127.0.0.1:7443' >>/etc/default/clank-daemon
(run_unit clank-daemon.service) >/tmp/daemon.log 2>&1 &
daemon_pid=$!
wait_http http://127.0.0.1:7070/v1/health || { cat /tmp/daemon.log; fail "the daemon did not answer /v1/health"; }
health=$(curl -fsS http://127.0.0.1:7070/v1/health)
ok "GET /v1/health: $health"
[ "$(stat -c %U "/proc/$daemon_pid")" = clank ] || fail "the daemon does not run as clank"
[ -n "$(find /var/lib/clank -maxdepth 1 -name 'clank.redb')" ] || fail "no store in /var/lib/clank"
ok "runs as clank; store in /var/lib/clank ($(ls /var/lib/clank | tr '\n' ' '))"
proxy_status=000
for _ in $(seq 1 50); do
    proxy_status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:8080/ || true)
    [ "$proxy_status" != 000 ] && [ -s /var/lib/clank/proxy/proxy.pid ] && break
    sleep 0.2
done
[ -s /var/lib/clank/proxy/proxy.pid ] && [ "$proxy_status" != 000 ] || { cat /tmp/daemon.log; fail "the daemon's proxy did not start"; }
ok "its proxy process runs (pid $(cat /var/lib/clank/proxy/proxy.pid)); 127.0.0.1:8080 answers $proxy_status"

step "clank init and clank server add (the join command)"
export HOME=/root
clank init --workspace acme --name Ada --email ada@example.com >/tmp/init.log 2>&1 || { cat /tmp/init.log /tmp/daemon.log; fail "clank init"; }
clank server add edge-1 >/tmp/server-add.log 2>&1 || { cat /tmp/server-add.log; fail "clank server add"; }
sed 's/clank-join-[A-Za-z0-9_-]*/clank-join-<redacted>/g; s/^/    | /' /tmp/server-add.log
join_line=$(grep -E '^ *clank-agent ' /tmp/server-add.log | head -n 1)
[ -n "$join_line" ] || fail "clank server add printed no clank-agent command"
grep -q -- '--fingerprint sha256:' <<<"$join_line" || fail "the join command has no --fingerprint (the agents' endpoint is TLS)"
# The join command with its placeholder still in: refused before anything happens.
set +e
out=$(sh /src/packaging/install-agent.sh --control-plane 'https://<this-host>:<agent port>' --join-token clank-join-x 2>&1)
status=$?
set -e
[ $status -eq 2 ] && grep -q placeholder <<<"$out" || fail "a placeholder control plane was not refused (status $status): $out"
ok "a control plane with <this-host>:<agent port> left in is refused (status 2)"
# What the operator runs: the printed command with the control plane's address filled in.
join_line=${join_line//<this-host>:<agent port>/127.0.0.1:7443}
read -r -a join_args <<<"$join_line"
set +e
out=$(sh /src/packaging/install-agent.sh --deb "$agent_deb" "${join_args[@]}" --join-token 'x;reboot' 2>&1)
status=$?
set -e
[ $status -eq 2 ] && grep -q 'join-token holds characters' <<<"$out" || fail "a join token with shell characters was not refused (status $status): $out"
ok "a join token with shell characters is refused (status 2)"

# --- 3. install-agent.sh --------------------------------------------------------------------
step "install-agent.sh without Docker"
command -v docker >/dev/null && fail "this image should have no docker"
set +e
out=$(sh /src/packaging/install-agent.sh --deb "$agent_deb" "${join_args[@]}" 2>&1)
status=$?
set -e
printf '%s\n' "$out" | sed 's/^/    | /'
[ $status -eq 3 ] || fail "install-agent.sh without docker exited $status, not 3"
grep -q 'apt-get install docker.io' <<<"$out" || fail "install-agent.sh did not say how to install docker.io"
dpkg-query -W clank-agent >/dev/null 2>&1 && fail "clank-agent was installed although Docker is missing"
[ ! -e /etc/clank/agent.env ] || fail "agent.env was written although Docker is missing"
ok "refused with status 3, explaining how to install docker.io; nothing installed or written"

step "install-agent.sh with a docker command whose engine does not answer"
mkdir -p /tmp/fake-docker
cat >/tmp/fake-docker/docker <<'EOF'
#!/bin/sh
# A docker CLI with no engine behind it.
echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
exit 1
EOF
chmod 755 /tmp/fake-docker/docker
set +e
out=$(PATH=/tmp/fake-docker:$PATH sh /src/packaging/install-agent.sh --deb "$agent_deb" "${join_args[@]}" 2>&1)
status=$?
set -e
printf '%s\n' "$out" | sed 's/^/    | /'
[ $status -eq 3 ] && grep -q 'engine does not answer' <<<"$out" || fail "an unreachable engine was not refused (status $status)"
[ ! -e /etc/clank/agent.env ] || fail "agent.env was written although the engine is unreachable"
ok "refused with status 3; nothing written"

step "install-agent.sh with a (fake) working Docker: installs the package, writes the enrollment"
cat >/tmp/fake-docker/docker <<'EOF'
#!/bin/sh
# A docker CLI whose engine "answers": enough for the installer's check.
case "$1" in
  info) echo "Server Version: 20.10.0-fake" ;;
  version) echo "20.10.0-fake" ;;
  *) echo "fake docker: $*" >&2; exit 1 ;;
esac
EOF
set +e
out=$(PATH=/tmp/fake-docker:$PATH sh /src/packaging/install-agent.sh --deb "$agent_deb" "${join_args[@]}" 2>&1)
status=$?
set -e
printf '%s\n' "$out" | sed 's/clank-join-[A-Za-z0-9_-]*/clank-join-<redacted>/g; s/^/    | /'
[ $status -eq 0 ] || fail "install-agent.sh exited $status"
[ "$(dpkg-query -W -f='${Status}' clank-agent)" = "install ok installed" ] || fail "clank-agent is not installed"
id -nG clank-agent | grep -qw docker || fail "user clank-agent is not in the docker group"
[ "$(stat -c '%U:%G %a' /etc/clank/agent.env)" = "root:root 600" ] || fail "agent.env is $(stat -c '%U:%G %a' /etc/clank/agent.env)"
want_token=$(grep -o 'clank-join-[A-Za-z0-9_-]*' <<<"$join_line" | head -n 1)
want_fp=$(grep -o 'sha256:[0-9a-f]*' <<<"$join_line" | head -n 1)
grep -qx 'CLANK_CONTROL_PLANE=https://127.0.0.1:7443' /etc/clank/agent.env || fail "agent.env: no control plane"
grep -qx "CLANK_CONTROL_PLANE_FINGERPRINT=$want_fp" /etc/clank/agent.env || fail "agent.env: no fingerprint"
grep -qx "CLANK_JOIN_TOKEN=$want_token" /etc/clank/agent.env || fail "agent.env: no join token"
grep -q 'systemd is not running here' <<<"$out" || fail "no word about systemd"
grep -q '/usr/bin/clank-agent' <<<"$out" || fail "the ExecStart to run was not printed"
[ ! -e /etc/systemd/system/multi-user.target.wants/clank-agent.service ] || fail "clank-agent.service was enabled without systemd"
ok "clank-agent installed (user clank-agent in docker); /etc/clank/agent.env root 0600 with the control plane, fingerprint and token; the start command printed"

step "systemd-analyze verify of the installed units"
if ! out=$(systemd-analyze verify "$(unit_path clank-daemon.service)" "$(unit_path clank-proxy.service)" "$(unit_path clank-agent.service)" 2>&1); then
    printf '%s\n' "$out"
    fail "systemd-analyze verify"
fi
# Warnings about the host's own units (or none) are fine; any about ours are not.
if grep -i 'clank' <<<"$out"; then
    fail "systemd-analyze verify warns about our units"
fi
ok "systemd-analyze verify: no complaints"

# --- 4. The agent, as its unit runs it -------------------------------------------------------
step "clank-agent: the unit's ExecStart as its User, with /etc/clank/agent.env"
clank-agent --version | grep -q '^clank-agent ' || fail "clank-agent --version"
set +e
timeout 60 bash -c "$(declare -f unit_path unit_value run_unit fail); run_unit clank-agent.service" >/tmp/agent.log 2>&1
status=$?
set -e
sed 's/^/    | /' /tmp/agent.log | tail -n 8
[ $status -ne 124 ] || fail "the agent neither enrolled nor stopped within 60 s"
grep -q 'Enrolled with the control plane' /tmp/agent.log || fail "the agent did not enroll"
grep -qi 'docker' /tmp/agent.log || fail "the agent did not say Docker is what it lacks"
[ $status -eq 4 ] || fail "the agent exited $status, not 4 (bad configuration: RestartPreventExitStatus)"
[ "$(stat -c '%U %a' /var/lib/clank-agent)" = "clank-agent 700" ] || fail "/var/lib/clank-agent is $(stat -c '%U %a' /var/lib/clank-agent)"
clank server list >/tmp/servers.log 2>&1 || true
sed 's/^/    | /' /tmp/servers.log
grep -q 'edge-1' /tmp/servers.log || fail "clank server list has no edge-1"
ok "enrolled with the daemon over pinned TLS as edge-1, identity in /var/lib/clank-agent; then exit 4: no Docker engine"

# --- 5. The standalone proxy -----------------------------------------------------------------
step "clank-proxy: the unit's ExecStart (/etc/clank/proxy.json) as clank-proxy"
(run_unit clank-proxy.service) >/tmp/proxy.log 2>&1 &
proxy_pid=$!
wait_http http://127.0.0.1:9180/healthz || { cat /tmp/proxy.log; fail "clank-proxy did not answer /healthz on its admin listener"; }
[ "$(stat -c %U "/proc/$proxy_pid")" = clank-proxy ] || fail "clank-proxy does not run as clank-proxy"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: nothing.example' http://127.0.0.1:80/ || true)
[ "$code" != 000 ] || fail "clank-proxy does not answer on :80"
cap_amb=$(sed -n 's/^CapAmb:\t*//p' "/proc/$proxy_pid/status")
ok "GET :9180/healthz answers; :80 answers an unrouted host with $code; ambient capabilities $cap_amb (the unit's CAP_NET_BIND_SERVICE)"
signal=$(unit_value clank-proxy.service KillSignal)
kill -s "${signal#SIG}" "$proxy_pid"
set +e
wait "$proxy_pid"
status=$?
set -e
[ $status -eq 0 ] || { cat /tmp/proxy.log; fail "clank-proxy exited $status on $signal"; }
ok "stopped cleanly on the unit's KillSignal ($signal)"

# --- 6. Stop, remove, purge -------------------------------------------------------------------
step "stop the daemon (SIGTERM), reinstall (the upgrade path), then dpkg --purge all four"
kill -TERM "$daemon_pid"
set +e
wait "$daemon_pid"
status=$?
set -e
[ $status -eq 0 ] || { tail -n 20 /tmp/daemon.log; fail "the daemon exited $status on SIGTERM"; }
# KillMode=process: the daemon's proxy outlives it, to be adopted by the next start.
if [ -s /var/lib/clank/proxy/proxy.pid ]; then
    kill "$(cat /var/lib/clank/proxy/proxy.pid)" 2>/dev/null || true
fi
# The upgrade path of the maintainer scripts (postinst configure with the old version), with
# the admin's edit of a conffile kept.
dpkg -i "${debs[@]}" >/tmp/upgrade.log 2>&1 || { cat /tmp/upgrade.log; fail "dpkg -i over the installed packages"; }
grep -qx 'CLANK_AGENT_LISTEN=127.0.0.1:7443' /etc/default/clank-daemon || fail "reinstalling lost the edit of /etc/default/clank-daemon"
dpkg --purge clank-agent clank-proxy clank-daemon clank >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "dpkg --purge"; }
[ -d /var/lib/clank ] && [ -e /var/lib/clank/clank.redb ] || fail "purging removed the daemon's data"
[ ! -e /usr/bin/clank-daemon ] || fail "clank-daemon is still there"
ok "stopped with status 0; reinstalled over itself (conffile edit kept); purged; /var/lib/clank kept"

printf '\nDEB TEST PASSED\n'
