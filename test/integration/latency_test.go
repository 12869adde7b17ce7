package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"guestagent.io/operator/agentd/oga/ogafake"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// BenchmarkCommandLatency measures, on the real apiserver, the time from a GuestAgentCommand's
// creation to the moment the fake oVirt guest receives the request (controller scheduling,
// agentd's watch, claim, routing, the socket write), and reports p50/p99 in milliseconds.
// Commands are created one after another (each waits for the previous delivery).
func BenchmarkCommandLatency(b *testing.B) {
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	cfg := ogafake.Config{OnCommand: func(c ogafake.Command) {
		if c.Name == "lock-screen" {
			mu.Lock()
			arrived[fmt.Sprint(len(arrived))] = c.At
			mu.Unlock()
		}
	}}
	e := newCmdEnv(b, "tenant-a", "bbbbbbbb", cfg)
	target := e.target(e.oOnly)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		c := newCmd(e.ns, fmt.Sprintf("lat-%d-%d", time.Now().UnixNano(), i), target, gav1.ActionLockScreen)
		created := time.Now()
		if err := env.Client.Create(ctx, c); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			at, ok := arrived[fmt.Sprint(i)]
			mu.Unlock()
			if ok {
				lat = append(lat, at.Sub(created))
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("command %d never reached the guest", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
