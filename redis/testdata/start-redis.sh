#!/usr/bin/env bash
# start-redis.sh starts a throw-away redis-server for the integration tests of
# github.com/llmhttp/llmhttp/redis and prints its address (127.0.0.1:PORT) on
# stdout. It installs the Debian package redis-server when redis-server is
# missing (apt-get update first; needs root), listens on loopback only, keeps
# nothing on disk (no RDB snapshots, no AOF) and runs daemonized with a pid
# file in $LLMHTTP_REDIS_DIR (default: a new temporary directory).
#
#   addr=$(redis/testdata/start-redis.sh)          # start
#   LLMHTTP_REDIS_ADDR=$addr go test ./redis/...
#   redis/testdata/start-redis.sh stop "$addr"      # stop it again
#
# The port is $LLMHTTP_REDIS_PORT, default 6390; if it is taken, the next
# free one up to +50 is used.
set -euo pipefail

if [ "${1:-}" = "stop" ]; then
	addr=${2:?usage: start-redis.sh stop HOST:PORT}
	redis-cli -h "${addr%:*}" -p "${addr##*:}" shutdown nosave >/dev/null 2>&1 || true
	exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
	echo "start-redis.sh: installing redis-server" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends redis-server >&2
fi

dir=${LLMHTTP_REDIS_DIR:-$(mktemp -d -t llmhttp-redis.XXXXXX)}
port=${LLMHTTP_REDIS_PORT:-6390}
last=$((port + 50))
while [ "$port" -le "$last" ]; do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		break
	fi
	port=$((port + 1))
done
if [ "$port" -gt "$last" ]; then
	echo "start-redis.sh: no free port" >&2
	exit 1
fi

redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
	--daemonize yes --dir "$dir" --pidfile "$dir/redis-$port.pid" \
	--logfile "$dir/redis-$port.log" >&2

for _ in $(seq 1 100); do
	if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
		echo "127.0.0.1:$port"
		exit 0
	fi
	sleep 0.05
done
echo "start-redis.sh: redis-server did not answer on 127.0.0.1:$port (log: $dir/redis-$port.log)" >&2
exit 1
