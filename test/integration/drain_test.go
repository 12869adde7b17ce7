package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/service/servicefake"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// BenchmarkCommandDrain measures one tenant's command backlog on one node against the real
// apiserver: tenant A creates GA_DRAIN_COMMANDS (default 2,000) ping commands for one of its
// guests on node-a; once the guest received a tenth of them (at most 100), tenant B creates pings
// for its own guest on the same node, one after another and at most one per second, until A's
// backlog is done. Both guests answer through the in-memory QEMU agent
// fake; the controller manager runs as in the other tests, agentd with its default configuration
// (client QPS and burst included). Reported:
//   - drain-s: A's first create → A's guest received the last A command;
//   - a-cmds/s: A commands received per second over the drain;
//   - b-latency-ms: B's first create → B's guest received it;
//   - b-p50-ms, b-p99-ms, b-cmds: the latency of B's commands during the drain, and their number;
//   - b-failed: B commands that ended without reaching the guest (e.g. DeadlineExceeded after
//     their default 300 s deadline);
//   - b-behind: A commands the guest received between B's first create and its delivery.
//
// Run it with -benchtime 1x and a long -timeout (hack/bench.sh does).
func BenchmarkCommandDrain(b *testing.B) {
	n := 2000
	if s := os.Getenv("GA_DRAIN_COMMANDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 10 {
			b.Fatalf("GA_DRAIN_COMMANDS=%q: want an integer ≥ 10", s)
		}
		n = v
	}
	ctx := context.Background()
	for i := range b.N {
		b.StopTimer()
		tag := fmt.Sprintf("%08x", time.Now().UnixNano()&0xffffffff)
		domA := withQGA(domain(tag+"-0000-4000-8000-00000000000a", "drain-a-"+tag))
		domB := withQGA(domain(tag+"-0000-4000-8000-00000000000b", "drain-b-"+tag))
		domA.Placement.Namespace, domB.Placement.Namespace = "tenant-a", "tenant-b"
		q := servicefake.NewQGA()
		q.Set(domA.UUID, debianQGA(), qgaUp("7.2.22"))
		q.Set(domB.UUID, debianQGA(), qgaUp("7.2.22"))
		nd := startNodeTuned(b, env.Config, "node-a", q, nil, domA, domB)
		var targetA, targetB string
		waitFor(b, 60*time.Second, func() bool {
			ga, errA := getGAS(ctx, "tenant-a", domA.UUID)
			gb, errB := getGAS(ctx, "tenant-b", domB.UUID)
			if errA != nil || errB != nil {
				return false
			}
			targetA, targetB = ga.Name, gb.Name
			return true
		}, "the statuses of both guests")
		pingA, pingB := "ping "+domA.UUID, "ping "+domB.UUID
		counts := func() (a, b int) {
			for _, c := range q.Calls() {
				switch c {
				case pingA:
					a++
				case pingB:
					b++
				}
			}
			return a, b
		}

		b.StartTimer()
		start := time.Now()
		// Tenant A's backlog, created by 8 writers in order of their names.
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1)) - 1
					if k >= n {
						return
					}
					c := newCmd("tenant-a", fmt.Sprintf("drain-%s-%05d", tag, k), targetA, gav1.ActionPing)
					c.Spec.DeadlineSeconds = ptr.To[int32](3600)
					if err := env.Client.Create(ctx, c); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		created := time.Since(start)

		// Tenant B's commands, once A's backlog is being drained: one after another (each created
		// when the previous one reached B's guest or ended, at most one per second) until A's
		// backlog is done.
		waitFor(b, time.Hour, func() bool { a, _ := counts(); return a >= min(n/10, 100) }, "the first A commands")
		var bLat []time.Duration
		bFailed, bBehind := 0.0, 0
		pace := time.NewTicker(time.Second) // B sends one command per second at most
		defer pace.Stop()
		for k := 0; ; k++ {
			if k > 0 {
				<-pace.C
			}
			if a, _ := counts(); a >= n {
				break
			}
			bCmd := newCmd("tenant-b", fmt.Sprintf("drain-b-%s-%03d", tag, k), targetB, gav1.ActionPing)
			bCreated := time.Now()
			aAtB, _ := counts()
			if err := env.Client.Create(ctx, bCmd); err != nil {
				b.Fatal(err)
			}
			waitFor(b, 10*time.Minute, func() bool {
				a, got := counts()
				if got > k {
					bLat = append(bLat, time.Since(bCreated))
					if k == 0 {
						bBehind = a - aAtB
					}
					return true
				}
				cur := &gav1.GuestAgentCommand{}
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bCmd), cur); err != nil || !cur.Status.Phase.IsTerminal() {
					return false
				}
				bLat = append(bLat, time.Since(bCreated))
				if _, got := counts(); got <= k { // not delivered (re-counted: it may have been meanwhile)
					bFailed++
					b.Logf("tenant B's command %d ended without reaching its guest: %s %s", k, cur.Status.Phase, cur.Status.Reason)
				}
				return true
			}, "tenant B's command")
		}
		if len(bLat) == 0 {
			b.Fatal("A's backlog drained before tenant B's first command: raise GA_DRAIN_COMMANDS")
		}
		bFirst := bLat[0]
		slices.Sort(bLat)
		bP50, bP99 := bLat[len(bLat)/2], bLat[min(len(bLat)-1, len(bLat)*99/100)]

		waitFor(b, 2*time.Hour, func() bool { a, _ := counts(); return a >= n }, "the whole backlog")
		drain := time.Since(start)
		b.StopTimer()
		a, _ := counts()
		if a != n {
			b.Fatalf("A's guest received %d commands, want %d (at most once)", a, n)
		}
		b.Logf("iteration %d: %d commands created in %s, drained in %s; B's first after %s (%d A commands delivered meanwhile); "+
			"%d B commands during the drain: p50 %s, p99 %s, max %s, %v ended without reaching the guest",
			i, n, created.Round(time.Millisecond), drain.Round(time.Millisecond), bFirst.Round(time.Millisecond), bBehind,
			len(bLat), bP50.Round(time.Millisecond), bP99.Round(time.Millisecond), bLat[len(bLat)-1].Round(time.Millisecond), bFailed)
		b.ReportMetric(drain.Seconds(), "drain-s")
		b.ReportMetric(float64(n)/drain.Seconds(), "a-cmds/s")
		b.ReportMetric(float64(bFirst.Microseconds())/1000, "b-latency-ms")
		b.ReportMetric(float64(bP50.Microseconds())/1000, "b-p50-ms")
		b.ReportMetric(float64(bP99.Microseconds())/1000, "b-p99-ms")
		b.ReportMetric(float64(len(bLat)), "b-cmds")
		b.ReportMetric(float64(bBehind), "b-behind")
		b.ReportMetric(bFailed, "b-failed")
		b.ReportMetric(0, "ns/op")
		nd.stop()
	}
}

// waitFor polls cond every 20 ms until it holds, failing b after timeout.
func waitFor(b *testing.B, timeout time.Duration, cond func() bool, what string) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
