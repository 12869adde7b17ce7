package publish

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestUnavailable(t *testing.T) {
	gr := schema.GroupResource{Group: "guestagent.io", Resource: "guestagentstatuses"}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"wrapped connection refused", fmt.Errorf("applying status: %w", refused), true},
		{"503", apierrors.NewServiceUnavailable("down"), true},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"504", apierrors.NewTimeoutError("timeout", 1), true},
		{"server timeout", apierrors.NewServerTimeout(gr, "update", 1), true},
		{"404 page not found (resource not served yet)",
			apierrors.NewGenericServerResponse(404, "PUT", gr, "x", "404 page not found", 0, true), true},
		{"404 object", apierrors.NewNotFound(gr, "x"), false},
		{"409", apierrors.NewConflict(gr, "x", errors.New("changed")), false},
		{"422", apierrors.NewInvalid(schema.GroupKind{Group: "guestagent.io", Kind: "GuestAgentStatus"}, "x",
			field.ErrorList{field.Required(field.NewPath("spec"), "")}), false},
		{"500 from a webhook", apierrors.NewInternalError(errors.New("webhook failed")), false},
		{"403", apierrors.NewForbidden(gr, "x", errors.New("rbac")), false},
		{"optimistic retry", fmt.Errorf("x: %w", errRetry), false},
		{"nil", nil, false},
	} {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("%s: unavailable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestOutageHoldsWritesAndReleasesThemAtOnce: while the API server does not answer, one object
// probes it and the others send nothing; when it answers, every held object is written at once
// with its latest state (here the per-object backoff is 10 min: without the release the test
// would time out), each exactly once.
func TestOutageHoldsWritesAndReleasesThemAtOnce(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c, quietLogger, func(o *Options) {
		o.RetryBaseDelay, o.RetryMaxDelay = 50*time.Millisecond, 10*time.Minute
	})
	const n = 20
	ds := make([]Desired, n)
	for i := range ds {
		ds[i] = sampleDesired(newUUID(), fmt.Sprintf("vm-outage-%d", i))
		mustUpsert(t, p, ds[i])
	}
	settle(t, p)

	c.setDown(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	before := c.attempts.Load()
	for i := range ds {
		ds[i].Info.Hostname.Name = "during-outage"
		mustUpsert(t, p, ds[i])
	}
	NewWithT(t).Eventually(func() error {
		if h := testutil.ToFloat64(heldObjects); h != n {
			return fmt.Errorf("%v objects held, want %d", h, n)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())
	for i := range ds { // more changes while down: held, not attempted
		ds[i].Info.Hostname.Name = "latest"
		mustUpsert(t, p, ds[i])
	}
	// Probes back off 50 ms, 100 ms, … : about 6 in 3 s, plus the attempts already running when
	// the outage began. Each object retrying on its own would have sent ≥ 5 each (≥ 100).
	NewWithT(t).Consistently(func() int64 { return c.attempts.Load() - before }).WithTimeout(3*time.Second).
		Should(BeNumerically("<", n), "write attempts during the outage: fewer than one per object")

	w := c.writes.Load()
	c.setDown(nil)
	settle(t, p)
	if got := c.writes.Load() - w; got != n {
		t.Errorf("%d writes after the outage, want %d (one per held object)", got, n)
	}
	for _, d := range ds {
		if h := getStatus(t, nsDefault, ObjectName(d.Domain.Name, d.Domain.UUID)).Status.Hostname; h != "latest" {
			t.Errorf("%s: hostname %q, want the latest", d.Domain.Name, h)
		}
	}
	if h := testutil.ToFloat64(heldObjects); h != 0 {
		t.Errorf("held gauge %v after the outage", h)
	}
}

// TestOutageProbeThatVanishesPassesOn: the probing object is released (its domain migrated away)
// during the outage; another held object takes over the probing and the rest are written.
func TestOutageProbeThatVanishesPassesOn(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c, quietLogger, func(o *Options) {
		o.RetryBaseDelay, o.RetryMaxDelay = 50*time.Millisecond, 10*time.Minute
	})
	ds := []Desired{sampleDesired(newUUID(), "vm-probe-0"), sampleDesired(newUUID(), "vm-probe-1"), sampleDesired(newUUID(), "vm-probe-2")}
	for _, d := range ds {
		mustUpsert(t, p, d)
	}
	settle(t, p)
	c.setDown(apierrors.NewServiceUnavailable("down (injected)"))
	for i := range ds {
		ds[i].Info.Hostname.Name = "after"
		mustUpsert(t, p, ds[i])
	}
	NewWithT(t).Eventually(func() error {
		if h := testutil.ToFloat64(heldObjects); h != float64(len(ds)) {
			return fmt.Errorf("%v objects held", h)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())
	p.mu.Lock()
	probe := p.outage.probe
	p.mu.Unlock()
	if err := p.Release(probe); err != nil {
		t.Fatal(err)
	}
	c.setDown(nil)
	settle(t, p)
	for _, d := range ds {
		h := getStatus(t, nsDefault, ObjectName(d.Domain.Name, d.Domain.UUID)).Status.Hostname
		if want := map[bool]string{true: "web1", false: "after"}[d.Domain.UUID == probe]; h != want {
			t.Errorf("%s: hostname %q, want %q", d.Domain.Name, h, want)
		}
	}
}
