#!/usr/bin/env bash
# What a metrics library adds to scaivault-run: binary size, start-up time,
# and the supervisor's VmRSS/RssAnon while its child runs (BENCHMARKS.md,
# "Status endpoint: choosing a metrics library").
#
# It builds, in a scratch copy of the tree at BASE (default 2e745cf, the
# commit before the status endpoint, so that no metrics library is in it
# yet; nothing in the work tree is changed), the binary plus a probe file in package main that registers the nine metric families of
# the status endpoint and serves them on $PROBE_ADDR, once with each
# library and once with a plain net/http handler (the baseline). Then for
# each it starts a supervising run with one reference against a separate
# dev server, scrapes the probe once, and reads /proc/PID/status.
#
#   bash bench/metricslib.sh [RUNS]     # default 7 runs each, medians printed
#   BASE=<commit> bash bench/metricslib.sh
set -euo pipefail
RUNS=${1:-7}
BASE=${BASE:-2e745cf}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export CGO_ENABLED=0

probe_common='
package main

import (
	"net"
	"net/http"
	"os"
)

func init() {
	addr := os.Getenv("PROBE_ADDR")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	go http.Serve(ln, probeHandler())
}
'
probe_none='
package main

import (
	"fmt"
	"net/http"
)

func probeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# HELP scaivault_run_child_up 1 while the child runs.")
		fmt.Fprintln(w, "# TYPE scaivault_run_child_up gauge")
		fmt.Fprintln(w, "scaivault_run_child_up 1")
	})
}
'
probe_vm='
package main

import (
	"io"
	"net/http"

	"github.com/VictoriaMetrics/metrics"
)

func probeHandler() http.Handler {
	metrics.ExposeMetadata(true)
	s := metrics.NewSet()
	s.NewGauge("scaivault_run_child_up", func() float64 { return 1 })
	s.NewCounter(`scaivault_run_child_restarts_total{reason="secret"}`)
	s.NewCounter("scaivault_run_child_reloads_total")
	s.NewGauge("scaivault_run_last_refresh_success_timestamp_seconds", func() float64 { return 1.7e9 })
	s.NewCounter(`scaivault_run_requests_total{route="/v1/secrets/batch-read",code="200"}`)
	s.NewGauge("scaivault_run_secrets_watched", func() float64 { return 1 })
	s.NewGauge("scaivault_run_events_connected", func() float64 { return 1 })
	s.RegisterMetricsWriter(func(w io.Writer) {
		metrics.WriteGaugeFloat64(w, `scaivault_run_lease_expiry_timestamp_seconds{engine="db",role="ro"}`, 1.7e9)
		metrics.WriteGaugeFloat64(w, `scaivault_run_certificate_expiry_timestamp_seconds{role="svc"}`, 1.7e9)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.WritePrometheus(w)
	})
}
'
probe_prom='
package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type probeCollector struct{ lease, cert *prometheus.Desc }

func (c probeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.lease; ch <- c.cert }
func (c probeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.lease, prometheus.GaugeValue, 1.7e9, "db", "ro")
	ch <- prometheus.MustNewConstMetric(c.cert, prometheus.GaugeValue, 1.7e9, "svc")
}

func probeHandler() http.Handler {
	r := prometheus.NewRegistry()
	r.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scaivault_run_child_up", Help: "1 while the child runs."}, func() float64 { return 1 }),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scaivault_run_child_restarts_total", Help: "Restarts."}, []string{"reason"}),
		prometheus.NewCounter(prometheus.CounterOpts{Name: "scaivault_run_child_reloads_total", Help: "Reloads."}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scaivault_run_last_refresh_success_timestamp_seconds", Help: "Last refresh."}, func() float64 { return 1.7e9 }),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scaivault_run_requests_total", Help: "Requests."}, []string{"route", "code"}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scaivault_run_secrets_watched", Help: "Watched."}, func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scaivault_run_events_connected", Help: "Events."}, func() float64 { return 1 }),
		probeCollector{
			lease: prometheus.NewDesc("scaivault_run_lease_expiry_timestamp_seconds", "Lease expiry.", []string{"engine", "role"}, nil),
			cert:  prometheus.NewDesc("scaivault_run_certificate_expiry_timestamp_seconds", "Cert expiry.", []string{"role"}, nil),
		},
	)
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{})
}
'

build() { # name module@version probe
	local name=$1 mod=$2 probe=$3 dir=$work/$1
	mkdir -p "$dir"
	git -C "$here" archive "$BASE" | tar -x -C "$dir"
	printf '%s' "$probe_common" >"$dir/zz_probe_common.go"
	printf '%s' "$probe" >"$dir/zz_probe.go"
	(cd "$dir" && { [ -z "$mod" ] || go get "$mod" >/dev/null 2>&1; } && go mod tidy >/dev/null 2>&1 &&
		go build -trimpath -ldflags '-s -w' -o "$work/bin-$name" .)
}
build none "" "$probe_none"
build vm github.com/VictoriaMetrics/metrics@v1.45.0 "$probe_vm"
build prom github.com/prometheus/client_golang@v1.25.0 "$probe_prom"

port=18291
"$work/bin-none" dev-server --listen 127.0.0.1:$port >/dev/null 2>&1 &
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$port/v1/auth/whoami && break; sleep 0.05; done
export SCAIVAULT_BASE_URL=http://127.0.0.1:$port SCAIVAULT_TOKEN=dev-root SCAIVAULT_LOG_LEVEL=warn

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

measure() { # bin -> "vmrss_kb rssanon_kb"
	local bin=$1 fifo=$work/fifo pid
	rm -f "$fifo"; mkfifo "$fifo"
	PROBE_ADDR=127.0.0.1:18292 "$bin" --env 'A=scaivault://app/db#password' -- sh -c 'echo ready; exec sleep 30' >"$fifo" &
	pid=$!
	read -r _ <"$fifo"
	curl -fs -o /dev/null http://127.0.0.1:18292/metrics
	sleep 1 # let the scrape's garbage settle as it would between scrapes
	awk '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} END{print r, a}' /proc/$pid/status
	kill -TERM $pid; wait $pid 2>/dev/null || true
}

startup() { # bin -> ms per --once start (40 runs)
	local bin=$1 t0 t1
	t0=$(date +%s%N)
	for _ in $(seq 40); do "$bin" --once --env 'A=scaivault://app/db#password' -- true; done
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 40000 ))
}

printf '%-6s %10s %12s %12s %12s\n' lib size_bytes vmrss_kib rssanon_kib start_us
for name in none vm prom; do
	bin=$work/bin-$name
	rss=(); anon=(); st=()
	for _ in $(seq "$RUNS"); do
		read -r r a < <(measure "$bin"); rss+=("$r"); anon+=("$a")
		st+=("$(startup "$bin")")
	done
	printf '%-6s %10s %12s %12s %12s\n' "$name" "$(stat -c %s "$bin")" \
		"$(printf '%s\n' "${rss[@]}" | median)" "$(printf '%s\n' "${anon[@]}" | median)" "$(printf '%s\n' "${st[@]}" | median)"
done
