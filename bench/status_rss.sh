#!/usr/bin/env bash
# The supervisor's VmRSS and RssAnon (KiB, median of RUNS) with one
# reference while its child runs, without and with --status-addr (scraped
# once), against a separate dev server; and the binary's size.
#
#   bash bench/status_rss.sh [RUNS]
set -euo pipefail
RUNS=${1:-7}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/bin" .)
bin=$work/bin
port=18311
"$bin" dev-server --listen 127.0.0.1:$port >/dev/null 2>&1 &
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$port/v1/auth/whoami && break; sleep 0.05; done
export SCAIVAULT_BASE_URL=http://127.0.0.1:$port SCAIVAULT_TOKEN=dev-root SCAIVAULT_LOG_LEVEL=warn
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
measure() { # extra flags...
	local fifo=$work/fifo pid
	rm -f "$fifo"; mkfifo "$fifo"
	"$bin" "$@" --env 'A=scaivault://app/db#password' -- sh -c 'echo ready; exec sleep 30' >"$fifo" &
	pid=$!
	read -r _ <"$fifo"
	if [ $# -gt 0 ]; then
		for p in metrics status readyz healthz; do curl -fs -o /dev/null "http://127.0.0.1:18312/$p"; done
	fi
	sleep 1
	awk '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} END{print r, a}' /proc/$pid/status
	kill -TERM $pid; wait $pid 2>/dev/null || true
}
echo "binary: $(stat -c %s "$bin") bytes"
printf '%-12s %10s %12s\n' run vmrss_kib rssanon_kib
for mode in off on; do
	rss=(); anon=()
	for _ in $(seq "$RUNS"); do
		if [ $mode = on ]; then read -r r a < <(measure --status-addr 127.0.0.1:18312); else read -r r a < <(measure); fi
		rss+=("$r"); anon+=("$a")
	done
	printf '%-12s %10s %12s\n' "status-$mode" "$(printf '%s\n' "${rss[@]}" | median)" "$(printf '%s\n' "${anon[@]}" | median)"
done
