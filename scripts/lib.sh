# shellcheck shell=bash
# Shared helpers of scripts/dev and scripts/test. Source it
# (`. scripts/lib.sh`); it only defines functions.
#
#   ensure_redis_server        redis-server + redis-cli, installed if missing
#   ensure_smtp_catcher        aiosmtpd for Debian's /usr/bin/python3
#   ensure_openssl             openssl (the tests make a throwaway CA with it)
#   ensure_chromium            chromium + chromedriver (the dashboard's browser test)
#   free_port                  prints a TCP port the kernel says is free
#   port_busy PORT             true when 127.0.0.1:PORT cannot be bound (something listens)
#   port_pids PORT             pids of the processes listening on PORT that /proc shows
#   describe_port PORT         "python3 (pid 123)" for what listens on PORT, if /proc tells
#   start_redis DIR PORT [ARG...]   a redis-server of our own, data/log in DIR
#   stop_redis DIR             stops the redis-server start_redis left in DIR
#   start_redis_cluster DIR PORT...  a Redis Cluster of our own, one master per
#                              PORT (data/log in DIR/<port>), slots spread by
#                              `redis-cli --cluster create`; waits for cluster_state:ok
#   stop_redis_cluster DIR     stops every node start_redis_cluster left in DIR
#   start_smtp_catcher MAILDIR PORT LOG   aiosmtpd writing a maildir; sets SMTP_PID
#   stop_smtp_catcher          stops it again

# Debian's python: aiosmtpd comes from the Debian package python3-aiosmtpd,
# which a pyenv (or other) python3 first on PATH does not see.
COURIER_SYS_PYTHON=/usr/bin/python3

say() { echo "courier: $*" >&2; }

# apt_install PACKAGE...: installs Debian packages when we are root (running
# `apt-get update` once first); otherwise prints what to install and fails.
_courier_apt_updated=""
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing Debian package(s): $*"
    say "install with: sudo apt-get install -y $*"
    return 1
  fi
  local out
  out=$(mktemp)
  say "installing $* (apt-get)..."
  if [ -z "$_courier_apt_updated" ]; then
    if ! apt-get update >"$out" 2>&1; then
      cat "$out" >&2; rm -f "$out"; say "apt-get update failed"; return 1
    fi
    _courier_apt_updated=1
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"; say "apt-get install $* failed"; return 1
  fi
  rm -f "$out"
}

# Makes sure redis-server and redis-cli are on PATH; exits 1 if they cannot be.
ensure_redis_server() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return 0
  fi
  apt_install redis-server || exit 1
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    say "redis-server/redis-cli still not on PATH after installing redis-server"
    exit 1
  fi
}

# Makes sure `/usr/bin/python3 -m aiosmtpd` works; exits 1 if it cannot.
ensure_smtp_catcher() {
  if [ -x "$COURIER_SYS_PYTHON" ] && "$COURIER_SYS_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
    return 0
  fi
  apt_install python3-aiosmtpd || exit 1
  if ! "$COURIER_SYS_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
    say "$COURIER_SYS_PYTHON still cannot import aiosmtpd after installing python3-aiosmtpd"
    exit 1
  fi
}

# Makes sure Debian's Chromium and its WebDriver are installed where the
# dashboard's browser test (tests/api/browser.rs) looks for them; exits 1
# if they cannot be.
ensure_chromium() {
  if [ -x /usr/lib/chromium/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return 0
  fi
  apt_install chromium chromium-driver || exit 1
  if ! [ -x /usr/lib/chromium/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    say "/usr/lib/chromium/chromium or /usr/bin/chromedriver still missing after installing chromium chromium-driver"
    exit 1
  fi
}

# Makes sure the openssl command is on PATH (the Redis TLS tests make a
# throwaway CA and server certificate with it); exits 1 if it cannot be.
ensure_openssl() {
  if command -v openssl >/dev/null 2>&1; then
    return 0
  fi
  apt_install openssl || exit 1
  if ! command -v openssl >/dev/null 2>&1; then
    say "openssl still not on PATH after installing openssl"
    exit 1
  fi
}

# Prints a TCP port on 127.0.0.1 that is free right now (the kernel picks it).
free_port() {
  local py=$COURIER_SYS_PYTHON
  [ -x "$py" ] || py=python3
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True when nothing could listen on 127.0.0.1:PORT because something else
# already does (on 127.0.0.1, 0.0.0.0 or a dual-stack [::]). SO_REUSEADDR,
# as servers set it, so a connection in TIME_WAIT does not count.
port_busy() {
  ! "$COURIER_SYS_PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1" 2>/dev/null
}

# port_pids PORT: the pids of the processes listening on TCP PORT, one a
# line, from /proc (the processes of other users only when root; nothing
# when none is visible).
port_pids() {
  "$COURIER_SYS_PYTHON" - "$1" <<'PY' 2>/dev/null || true
import os, sys
port = int(sys.argv[1])
sockets = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    sockets.add("socket:[%s]" % fields[9])
    except OSError:
        pass
for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
    try:
        if any(os.readlink("/proc/%s/fd/%s" % (pid, fd)) in sockets
               for fd in os.listdir("/proc/%s/fd" % pid)):
            print(pid)
    except OSError:
        pass
PY
}

# describe_port PORT: "name (pid N)" of each process listening on PORT, or
# "a process of another user" when /proc does not show it.
describe_port() {
  local pid out=""
  for pid in $(port_pids "$1"); do
    out="${out:+$out, }$(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid)"
  done
  printf '%s' "${out:-a process this user cannot see}"
}

# start_redis DIR PORT [ARG...]: starts a daemonized redis-server on
# 127.0.0.1:PORT with data, pid file and log in DIR (created), without
# persistence unless ARGs say otherwise (later arguments win, e.g.
# `--appendonly yes`). Waits (10 s at most) until it answers PING and checks
# that the server answering is this one, not another one on the same port.
start_redis() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  if ! redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
      --save "" --appendonly no --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"; then
    say "redis-server refused to start on port $port (log: $dir/redis.log)"
    return 1
  fi
  local _
  for _ in $(seq 1 100); do
    if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
      if [ "$(redis-cli -p "$port" config get dir 2>/dev/null | sed -n 2p)" = "$dir" ]; then
        return 0
      fi
      say "port $port is answered by another Redis, not the one started in $dir"
      break
    fi
    sleep 0.1
  done
  say "redis-server on port $port did not come up; end of $dir/redis.log:"
  tail -n 15 "$dir/redis.log" >&2 2>/dev/null || true
  stop_redis "$dir"
  return 1
}

# stop_redis DIR: stops the redis-server whose pid file start_redis left in
# DIR (SIGTERM, so an append-only file is flushed; SIGKILL after 10 s).
# Does nothing when there is none.
stop_redis() {
  local dir=$1 pid _
  [ -f "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  # Only a live redis-server: never a process that reused a stale pid.
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "redis-server $pid ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/redis.pid"
}

# start_redis_cluster DIR PORT...: one cluster-enabled redis-server per PORT
# (no persistence, node table and log in DIR/<port>/, its cluster bus on
# another free port), joined into one
# cluster of masters without replicas by `redis-cli --cluster create`, which
# gives each master an equal range of the 16384 slots in the order of the
# ports. Returns once every node reports cluster_state:ok (30 s at most).
start_redis_cluster() {
  local dir=$1 port _ ok
  shift
  local nodes=()
  for port in "$@"; do
    # The cluster bus port is named (not PORT + 10000, which may be taken
    # or beyond 65535 for a high free port).
    start_redis "$dir/$port" "$port" --cluster-enabled yes --cluster-port "$(free_port)" \
      --cluster-config-file nodes.conf --cluster-node-timeout 5000 || return 1
    nodes+=("127.0.0.1:$port")
  done
  if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >"$dir/create.log" 2>&1; then
    say "redis-cli --cluster create failed:"
    cat "$dir/create.log" >&2
    return 1
  fi
  for _ in $(seq 1 300); do
    ok=1
    for port in "$@"; do
      if ! redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
        ok=""
        break
      fi
    done
    [ -n "$ok" ] && return 0
    sleep 0.1
  done
  say "the Redis Cluster on ports $* did not reach cluster_state:ok"
  return 1
}

# stop_redis_cluster DIR: stops every node start_redis_cluster left in DIR.
stop_redis_cluster() {
  local node
  for node in "$1"/*/; do
    [ -d "$node" ] && stop_redis "${node%/}"
  done
  return 0
}

# start_smtp_catcher MAILDIR PORT LOG: runs aiosmtpd on 127.0.0.1:PORT in
# the background, storing every message it receives in the maildir MAILDIR
# (new mail in MAILDIR/new/), its output in LOG, in a session of its own.
# Sets SMTP_PID. Waits (10 s
# at most) until it accepts connections; fails loudly if it does not.
SMTP_PID=""
start_smtp_catcher() {
  local maildir=$1 port=$2 log=$3 _
  # Something already on the port would answer in aiosmtpd's place.
  if "$COURIER_SYS_PYTHON" -c 'import socket, sys; s = socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$port" 2>/dev/null; then
    say "cannot start the SMTP catcher: port $port is already in use"
    return 1
  fi
  mkdir -p "$(dirname "$maildir")" "$(dirname "$log")"
  # In a session of its own (as a daemonized redis-server is), so that a
  # signal to the caller's process group (a terminal closing, `timeout`)
  # does not stop it. A background job of a script leads no process group,
  # so setsid runs it without forking and $! is its pid.
  local detach=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  "${detach[@]}" "$COURIER_SYS_PYTHON" -m aiosmtpd -n -l "127.0.0.1:$port" \
    -c aiosmtpd.handlers.Mailbox "$maildir" >"$log" 2>&1 &
  SMTP_PID=$!
  for _ in $(seq 1 100); do
    kill -0 "$SMTP_PID" 2>/dev/null || break
    if _smtp_answers "$port" && kill -0 "$SMTP_PID" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  say "the SMTP catcher (aiosmtpd) did not come up on port $port; its output:"
  cat "$log" >&2 2>/dev/null || true
  stop_smtp_catcher
  return 1
}

# True when an SMTP server on 127.0.0.1:PORT sends its 220 greeting.
_smtp_answers() {
  "$COURIER_SYS_PYTHON" -c '
import smtplib, sys
try:
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=1)
    s.quit()
except Exception:
    sys.exit(1)' "$1" 2>/dev/null
}

stop_smtp_catcher() {
  if [ -n "$SMTP_PID" ]; then
    kill -TERM "$SMTP_PID" 2>/dev/null || true
    wait "$SMTP_PID" 2>/dev/null || true
    SMTP_PID=""
  fi
}

# Makes sure Debian's nginx is installed (the fleet test runs three courier
# processes behind it with deploy/nginx.conf); exits 1 if it cannot be. The
# package's own service is not needed: the test starts nginx itself.
ensure_nginx() {
  if [ -x /usr/sbin/nginx ]; then
    return 0
  fi
  apt_install nginx-light || apt_install nginx || exit 1
  if ! [ -x /usr/sbin/nginx ]; then
    say "/usr/sbin/nginx still missing after installing nginx"
    exit 1
  fi
}
