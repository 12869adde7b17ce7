package publish

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestScaleUnchangedDomains publishes 1,000 domains, restarts the publisher and then re-publishes
// the same data in cycles: no cycle may write. PUBLISH_SCALE_DURATION (default 15s) sets how long
// the unchanged cycles run; the test logs the figures reported in docs/publishing.md.
func TestScaleUnchangedDomains(t *testing.T) {
	needEnv(t)
	const n = 1000
	dur := 15 * time.Second
	if v := os.Getenv("PUBLISH_SCALE_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
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
}
