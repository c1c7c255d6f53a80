package devserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// BenchmarkRead is single-secret read throughput over loopback with
// keep-alive connections.
func BenchmarkRead(b *testing.B) {
	s, err := New(Options{Seed: testSeed()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	url := ts.URL + "/v1/secrets/app/db"
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+rootTok)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkMemory100kVersions loads 10,000 secrets of 10 versions each and
// reports the live heap they take.
func BenchmarkMemory100kVersions(b *testing.B) {
	const secrets, versions = 10_000, 10
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := New(Options{Seed: &Seed{RootToken: rootTok}})
		if err != nil {
			b.Fatal(err)
		}
		for v := 0; v < versions; v++ {
			for n := 0; n < secrets; n++ {
				data := map[string]json.RawMessage{
					"username": json.RawMessage(fmt.Sprintf(`"user-%d"`, n)),
					"password": json.RawMessage(`"` + randomString(32) + `"`),
				}
				if _, aerr := s.writeSecret(fmt.Sprintf("bench/s%05d", n), writeInput{data: data}); aerr != nil {
					b.Fatal(aerr.msg)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap, "heap-bytes")
		b.ReportMetric(heap/(secrets*versions), "bytes/version")
		runtime.KeepAlive(s)
		s.Close()
	}
}
