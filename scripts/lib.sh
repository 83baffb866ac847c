# Shared helpers of scripts/dev and scripts/test. Source it; it defines
# functions only.

# Runs apt-get install for the given Debian packages when we are root;
# otherwise says what to install and fails.
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "courier: installing $* (apt-get)" >&2
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -qq "$@" >/dev/null
    fi
  else
    echo "courier: please install the Debian package(s): $* (sudo apt-get install $*)" >&2
    return 1
  fi
}

# Makes sure redis-server and redis-cli exist.
ensure_redis_server() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server || exit 1
  fi
}

# Makes sure the SMTP test server (aiosmtpd, for Debian's python3) exists.
ensure_smtp_server() {
  if ! /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    apt_install python3-aiosmtpd || exit 1
  fi
}

# Prints a TCP port nothing listens on right now.
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until something answers `redis-cli -p PORT ping` (10 s at most).
wait_for_redis() {
  local port=$1
  for _ in $(seq 1 100); do
    if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "courier: redis-server on port $port did not start" >&2
  return 1
}

# start_redis DIR PORT [extra redis-server arguments...]: a redis-server of
# our own, data and log in DIR.
start_redis() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" >/dev/null
  wait_for_redis "$port"
}

# stop_redis DIR PORT: stops the redis-server started by start_redis.
stop_redis() {
  local dir=$1 port=$2
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  if [ -f "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
}

# Waits until something accepts TCP connections on 127.0.0.1:PORT.
wait_for_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if /usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "courier: nothing listens on port $port" >&2
  return 1
}
