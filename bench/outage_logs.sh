#!/usr/bin/env bash
# What N supervisors log, counted by level and message, while their one dev
# server is in trouble (issue 14, item 3):
#
#   bash bench/outage_logs.sh outage [N] [DOWN]
#       N launchers (default 100) following the events stream of one static
#       secret; the dev server is stopped (SIGTERM: its port refuses) for
#       DOWN seconds (default 30), then started again on the same port and
#       state; counted from just before the stop to 60 s after the restart.
#   bash bench/outage_logs.sh faults [N] [SECONDS] [RATE]
#       N launchers (default 1) with a static secret and a 20 s renewable
#       lease, the dev server answering RATE (default 0.3) of the requests
#       with 503 (--fault-rate) for SECONDS (default 300), then 60 s more
#       without faults; counted from the start of the faults on.
#
# BIN=path runs that binary instead of one built from this tree (for a
# before/after comparison: build the other commit into a file and pass it).
# Logs are at the default level (info). Prints one table: count, level,
# message, over all launchers, then lines per launcher, then the first line
# of each message.
set -euo pipefail
mode=${1:-outage}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
srv=
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	[ -n "$srv" ] && kill -TERM "$srv" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
bin=${BIN:-}
if [ -z "$bin" ]; then
	(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$work/bin" .)
	bin=$work/bin
fi
port=${PORT:-18331}
url=http://127.0.0.1:$port
cat >"$work/seed.json" <<'EOF'
{"root_token": "bench-root",
 "secrets": {"app/db": {"data": {"password": "bench-pw", "username": "app"}}},
 "dynamic": {"db": {"kind": "random", "roles": {"app": {"ttl": "20s", "max_ttl": "24h", "renewable": true}}}}}
EOF

# start_server [fault-rate]: the dev server on $port with its state in
# $work/state.json (the second start finds the first's).
start_server() {
	"$bin" dev-server --listen 127.0.0.1:$port --seed "$work/seed.json" --data "$work/state.json" \
		--fault-rate "${1:-0}" --log-level error >>"$work/server.log" 2>&1 &
	srv=$!
	for _ in $(seq 200); do
		curl -s -o /dev/null "$url/v1/auth/whoami" && return
		sleep 0.05
	done
	echo "dev server did not start" >&2
	exit 1
}

stop_server() {
	kill -TERM "$srv"
	wait "$srv" 2>/dev/null || true
	srv=
}

# launch N refs...: N supervisors of `sleep`, each logging to $work/log.I.
launch() {
	local n=$1 i
	shift
	for i in $(seq "$n"); do
		SCAIVAULT_BASE_URL=$url SCAIVAULT_TOKEN=bench-root "$bin" "$@" -- sleep 100000 2>"$work/log.$i" &
		pids+=($!)
	done
	for i in $(seq "$n"); do
		until grep -q 'msg="child started"' "$work/log.$i" 2>/dev/null; do sleep 0.1; done
	done
}

# mark: remember each log's length; count prints what came after.
mark() {
	local i
	for i in $(seq "$1"); do stat -c %s "$work/log.$i" >"$work/mark.$i"; done
}

count() {
	local n=$1 i total
	for i in $(seq "$n"); do tail -c +$(($(cat "$work/mark.$i") + 1)) "$work/log.$i"; done >"$work/after"
	total=$(wc -l <"$work/after")
	printf '%7s  %-5s  %s\n' lines level message
	grep -o 'level=[A-Z]* msg="[^"]*"' "$work/after" | sed 's/level=\([A-Z]*\) msg=/\1 /' |
		sort | uniq -c | sort -rn | awk '{c=$1; l=$2; $1=$2=""; printf "%7d  %-5s  %s\n", c, l, substr($0, 3)}'
	printf '%7d  all    (%s per launcher)\n' "$total" "$(awk -v t="$total" -v n="$n" 'BEGIN{printf "%.1f", t/n}')"
	echo "# the first line of each message"
	awk 'match($0, /msg="[^"]*"/) { m = substr($0, RSTART, RLENGTH); if (!(m in seen)) { seen[m] = 1; print } }' "$work/after"
}

case $mode in
outage)
	n=${2:-100} down=${3:-30}
	start_server
	launch "$n" --env 'A=scaivault://app/db#password'
	sleep 5
	mark "$n"
	stop_server
	sleep "$down"
	start_server
	sleep 60
	echo "# $n launchers, the dev server stopped for ${down}s; logged from the stop to 60s after the restart"
	count "$n"
	echo "# requests the restarted server answered in those 60s: $(curl -fs -H 'Authorization: Bearer bench-root' "$url/v1/dev/stats")"
	;;
faults)
	n=${2:-1} secs=${3:-300} rate=${4:-0.3}
	start_server
	launch "$n" --env 'A=scaivault://app/db#password' --env 'U=scaivault+dynamic://db/app#username'
	sleep 2
	mark "$n"
	curl -fs -o /dev/null -X POST -H 'Authorization: Bearer bench-root' -H 'Content-Type: application/json' -d "{\"rate\": $rate, \"retry_after\": 1}" "$url/v1/dev/faults"
	sleep "$secs"
	curl -fs -o /dev/null -X POST -H 'Authorization: Bearer bench-root' -H 'Content-Type: application/json' -d '{"rate": 0}' "$url/v1/dev/faults"
	sleep 60
	echo "# $n launcher(s), $rate of the requests answered 503 for ${secs}s, then 60s without"
	count "$n"
	;;
*)
	echo "usage: $0 outage [N] [DOWN] | faults [N] [SECONDS] [RATE]" >&2
	exit 2
	;;
esac
