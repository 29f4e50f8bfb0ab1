#!/usr/bin/env bash
# A dedicated sshd for twinlab's `remote` stack: Docker (ssh://) and libvirt (qemu+ssh://) are
# reached through it on 127.0.0.1:2222, as they would be on another machine. Idempotent.
#   scripts/remote_access.sh [start] [PORT]   make keys and config, start sshd if needed, wait
#   scripts/remote_access.sh status [PORT]    say whether it runs and answers
#   scripts/remote_access.sh stop [PORT]      stop it (keys and config stay)
# PORT (default 2222) picks one of several instances, each with its own host key, e.g. 2223 for
# the second "host" of the `fleet` stack: both lead to this machine's daemons.
# The system's sshd, port 22, /etc/ssh and ~/.ssh are never touched: everything lives under
# ${TWINLAB_STATE}/sshd/ (sshd-PORT/ for other ports), plus the client key pair and
# known_hosts next to it.
set -euo pipefail

STATE="${TWINLAB_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/twinlab}"
PORT="${2:-2222}"
case "$PORT" in *[!0-9]* | "") echo "remote_access: port '$PORT' is not a number" >&2; exit 1 ;; esac
DIR="$STATE/sshd"
[ "$PORT" = 2222 ] || DIR="$STATE/sshd-$PORT"
ADDRESS=127.0.0.1
KEY="$STATE/remote_ed25519"          # the client key (stack config: remoteSshKeyPath)
KNOWN_HOSTS="$STATE/remote_known_hosts" # our own, never the user's known_hosts
CONFIG="$DIR/sshd_config"
PID_FILE="$DIR/sshd.pid"
LOG="$DIR/sshd.log"
MARKER="twinlab-remote-access"         # comment of the authorized key, names where it came from
SSHD=/usr/sbin/sshd

die() {
    printf 'remote_access: %s\n' "$1" >&2
    exit 1
}

# The pid of our sshd (from its pid file, checked to be sshd with our config), or nothing.
running_pid() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null) || return 0
    [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-f $CONFIG" &&
        echo "$pid"
    return 0
}

answers() {
    ssh -i "$KEY" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 \
        -p "$PORT" -l root -- "$ADDRESS" true >/dev/null 2>&1
}

case "${1:-start}" in
    start) ;;
    status)
        pid=$(running_pid)
        if [ -n "$pid" ] && answers; then
            echo "running (pid $pid) on $ADDRESS:$PORT; key $KEY"
            exit 0
        fi
        echo "not running${pid:+ (pid $pid does not answer)}"
        exit 1
        ;;
    stop)
        pid=$(running_pid)
        [ -n "$pid" ] && kill "$pid" && echo "stopped sshd (pid $pid)" || echo "not running"
        rm -f "$PID_FILE"
        exit 0
        ;;
    *) die "unknown command '$1'; use start, status or stop" ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root: the remote stack logs in as root to reach dockerd and libvirtd"
[ -x "$SSHD" ] || die "$SSHD is missing; install openssh-server (scripts/setup.sh does)"
mkdir -p "$DIR"
chmod 700 "$STATE" "$DIR"

# Keys: the server's host key and the client key pair, made once.
[ -s "$DIR/ssh_host_ed25519_key" ] ||
    ssh-keygen -q -t ed25519 -N '' -C "$MARKER-host" -f "$DIR/ssh_host_ed25519_key"
[ -s "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "$MARKER" -f "$KEY"

# Every command run with the key is logged before it runs (an audit trail: the Docker provider
# shows up as `docker system dial-stdio`); the command itself runs unchanged.
cat >"$DIR/run-logged.new" <<EOF
#!/bin/sh
# Forced command of the twinlab key (scripts/remote_access.sh): log the command, then run it.
[ -n "\$SSH_ORIGINAL_COMMAND" ] || { echo "twinlab's sshd runs commands only" >&2; exit 1; }
printf '%s %s\n' "\$(date -u +%Y-%m-%dT%H:%M:%SZ)" "\$SSH_ORIGINAL_COMMAND" >>"$DIR/commands.log"
exec /bin/sh -c "\$SSH_ORIGINAL_COMMAND"
EOF
chmod 755 "$DIR/run-logged.new"
mv "$DIR/run-logged.new" "$DIR/run-logged"

# Only this key, only from 127.0.0.1, no pty/agent/X11; forwarding stays on because the libvirt
# provider reaches libvirtd's unix socket through a direct-streamlocal channel.
options="from=\"$ADDRESS\",command=\"$DIR/run-logged\",restrict,port-forwarding"
authorized="$options $(cut -d' ' -f1,2 "$KEY.pub") $MARKER"
printf '# managed by scripts/remote_access.sh: the key %s, for root\n%s\n' \
    "$KEY" "$authorized" >"$DIR/authorized_keys.new"
mv "$DIR/authorized_keys.new" "$DIR/authorized_keys"

# Our known_hosts gets this server's real host key, so clients never have to trust on first use.
touch "$KNOWN_HOSTS"
ssh-keygen -q -R "[$ADDRESS]:$PORT" -f "$KNOWN_HOSTS" >/dev/null 2>&1 || true
rm -f "$KNOWN_HOSTS.old"
printf '[%s]:%s %s\n' "$ADDRESS" "$PORT" "$(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" \
    >>"$KNOWN_HOSTS"
chmod 600 "$KNOWN_HOSTS"

# Without PAM, sshd refuses a root whose password field starts with '!' (a locked account);
# PAM lets key logins through there, as Debian's own sshd does.
use_pam=no
[ "$(getent shadow root | cut -d: -f2 | cut -c1)" = "!" ] && use_pam=yes

cat >"$CONFIG.new" <<EOF
# twinlab's own sshd (scripts/remote_access.sh): loopback only, root by key only.
ListenAddress $ADDRESS:$PORT
HostKey $DIR/ssh_host_ed25519_key
PidFile $PID_FILE
AuthorizedKeysFile $DIR/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $use_pam
# The libvirt provider opens libvirtd's unix socket through a direct-streamlocal channel; sshd
# allows those only when local TCP forwarding is allowed too (no extra power for root).
AllowTcpForwarding local
AllowStreamLocalForwarding local
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
# VERBOSE: every login is logged with the key's fingerprint (the remote-stack test reads it).
LogLevel VERBOSE
# The Docker provider opens several ssh connections at once.
MaxStartups 64:30:128
EOF
# Debian's sshd needs its privilege separation directory, normally made by the systemd unit
# and gone after every boot; even `sshd -t` refuses to run without it.
mkdir -p /run/sshd
chmod 755 /run/sshd
"$SSHD" -t -f "$CONFIG.new" || die "sshd rejects $CONFIG.new (see above)"
changed=yes
cmp -s "$CONFIG.new" "$CONFIG" && changed=no
mv "$CONFIG.new" "$CONFIG"

pid=$(running_pid)
if [ -z "$pid" ]; then
    if ss -Hltn "sport = :$PORT" | grep -q .; then
        die "$ADDRESS:$PORT is held by another process: $(ss -Hltnp "sport = :$PORT" | head -1)"
    fi
    # -E: log to our file (there may be no syslog daemon); sshd daemonizes itself.
    "$SSHD" -f "$CONFIG" -E "$LOG"
    state="started"
elif [ "$changed" = yes ]; then
    kill -HUP "$pid" # sshd re-executes itself with the new config
    state="reloaded (pid $pid)"
else
    state="already running (pid $pid)"
fi

ok=no
for _ in $(seq 40); do
    answers && ok=yes && break
    sleep 0.25
done
# sshd's StrictModes refuses keys under a directory others can write (e.g. TWINLAB_STATE in /tmp).
[ "$ok" = yes ] || die "sshd on $ADDRESS:$PORT does not accept $KEY within 10 s: \
$(grep -E 'refused|error|fatal' "$LOG" | tail -1) (full log: $LOG)"
echo "sshd on $ADDRESS:$PORT $state, answers to $KEY"
