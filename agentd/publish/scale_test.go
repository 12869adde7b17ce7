package publish

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestScaleUnchangedDomains publishes 1,000 domains, restarts the publisher and then re-publishes
// the same data in cycles: no cycle may write. PUBLISH_SCALE_DURATION (default 15s) sets how long
// the unchanged cycles run. Then every domain changes during an API server outage of
// PUBLISH_OUTAGE_DURATION (default 5s) under the default retry delays. The test logs the figures
// reported in docs/publishing.md.
func TestScaleUnchangedDomains(t *testing.T) {
	needEnv(t)
	const n = 1000
	dur := envDuration(t, "PUBLISH_SCALE_DURATION", 15*time.Second)
	desired := make([]Desired, n)
	for i := range desired {
		desired[i] = sampleDesired(newUUID(), fmt.Sprintf("scale-%04d", i))
		desired[i].Domain.Namespace = "scale"
	}
	c1 := newCounting()
	p1 := startPublisher(t, nodeB, c1, quietLogger)
	start := time.Now()
	for _, d := range desired {
		mustUpsert(t, p1, d)
	}
	settle(t, p1)
	t.Logf("initial publish of %d domains: %d writes, %d reads in %v", n, c1.writes.Load(), c1.reads.Load(),
		time.Since(start).Round(time.Millisecond))
	// a new domain costs its create and its status write, and no read: the startup listing said
	// that its object does not exist (the reads left are the listing and the Node)
	if w, r := c1.writes.Load(), c1.reads.Load(); w != 2*n || r > 3 {
		t.Errorf("initial publish of %d new domains: %d writes, %d reads; want %d writes and no per-domain read", n, w, r, 2*n)
	}

	c2 := newCounting()
	start = time.Now()
	p2 := startPublisher(t, nodeB, c2, quietLogger) // agentd restart
	for _, d := range desired {
		mustUpsert(t, p2, d)
	}
	settle(t, p2)
	t.Logf("restart: %d writes, %d reads (seed list pages + first-sight reads) in %v", c2.writes.Load(),
		c2.reads.Load(), time.Since(start).Round(time.Millisecond))
	if w := c2.writes.Load(); w != 0 {
		t.Fatalf("restart with unchanged data wrote %d times", w)
	}

	start = time.Now()
	cycles := 0
	for time.Since(start) < dur {
		for _, d := range desired {
			mustUpsert(t, p2, d)
		}
		settle(t, p2)
		cycles++
	}
	elapsed := time.Since(start)
	w := c2.writes.Load()
	t.Logf("unchanged: %d cycles x %d domains in %v, %d writes (%.1f writes/min), %d decisions, %d reads",
		cycles, n, elapsed.Round(time.Millisecond), w, float64(w)*float64(time.Minute)/float64(elapsed),
		p2.stats.decisions.Load(), c2.reads.Load())
	if w != 0 {
		t.Fatalf("unchanged domains wrote %d times", w)
	}
	outagePhase(t, desired, envDuration(t, "PUBLISH_OUTAGE_DURATION", 5*time.Second))
}

// outagePhase restarts the publisher with the default retry delays, takes the API server away for
// outage while every domain changes twice, and checks that few requests were sent meanwhile and
// that each domain is written exactly once, with its latest state, once the server answers.
func outagePhase(t *testing.T, desired []Desired, outage time.Duration) {
	n := len(desired)
	c := newCounting()
	p := startPublisher(t, nodeB, c, quietLogger, func(o *Options) {
		o.RetryBaseDelay, o.RetryMaxDelay = DefaultRetryBaseDelay, DefaultRetryMaxDelay
	})
	for _, d := range desired {
		mustUpsert(t, p, d)
	}
	settle(t, p)
	c.setDown(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	start, before := time.Now(), c.attempts.Load()
	for round, host := range []string{"outage-1", "outage-2"} {
		for i := range desired {
			desired[i].Info.Hostname.Name = host
			mustUpsert(t, p, desired[i])
		}
		if round == 0 {
			time.Sleep(outage)
		}
	}
	during := c.attempts.Load() - before
	w := c.writes.Load()
	c.setDown(nil)
	up := time.Now()
	NewWithT(t).Eventually(c.writes.Load).WithTimeout(60*time.Second).WithPolling(time.Millisecond).
		ShouldNot(Equal(w), "a write after the server answered again")
	first := time.Since(up)
	settle(t, p)
	t.Logf("outage of %v with %d changing domains: %d requests sent during it; first write %v after the server "+
		"answered, all %d written in %v", up.Sub(start).Round(time.Millisecond), n, during, first.Round(time.Millisecond),
		c.writes.Load()-w, time.Since(up).Round(time.Millisecond))
	if got := c.writes.Load() - w; got != int64(n) {
		t.Errorf("%d writes after the outage, want %d (one per domain)", got, n)
	}
	if during >= int64(n) {
		t.Errorf("%d requests during the outage, want fewer than one per domain", during)
	}
	for _, d := range desired[:10] {
		if h := getStatus(t, "scale", ObjectName(d.Domain.Name, d.Domain.UUID)).Status.Hostname; h != "outage-2" {
			t.Errorf("%s: hostname %q, want the latest", d.Domain.Name, h)
		}
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}
