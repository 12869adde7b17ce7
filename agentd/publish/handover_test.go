package publish

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/tools/events"

	"guestagent.io/operator/api/v1alpha1"
)

// TestAdoptionWaitsForRelease: the destination of a live migration sees the domain while the
// source still runs it (both list it for a while): it neither writes nor takes the object until
// the source released it, then adopts the same object within its release backoff.
func TestAdoptionWaitsForRelease(t *testing.T) {
	needEnv(t)
	ca, cb := newCounting(), newCounting()
	pa := startPublisher(t, nodeA, ca)
	pb := startPublisher(t, nodeB, cb)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-wait")
	mustUpsert(t, pa, d)
	settle(t, pa)
	name := ObjectName("vm-wait", uuid)
	uid := getStatus(t, nsDefault, name).UID
	waits := testutil.ToFloat64(releaseWaits)

	d.Info.Hostname.Name = "on-b"
	mustUpsert(t, pb, d)
	g := NewWithT(t)
	g.Eventually(func() float64 { return testutil.ToFloat64(releaseWaits) - waits }).
		WithTimeout(10 * time.Second).Should(BeNumerically(">=", 2)) // it re-read at least once
	g.Consistently(func(g Gomega) {
		o := getStatus(t, nsDefault, name)
		g.Expect(o.Spec.NodeName).To(Equal(nodeA))
		// one request only: the create of a domain its startup listing did not have, which the
		// API refused (the object exists); then reads only
		g.Expect(cb.writes.Load()).To(Equal(int64(1)))
		g.Expect(o.UID).To(Equal(uid))
		g.Expect(pb.Pending()).To(Equal(1))
	}).WithTimeout(time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

	// The source still reports a change before it learns that the domain left: still its object.
	d2 := d
	d2.Info = d.Info.DeepCopy()
	d2.Info.Hostname.Name = "still-on-a"
	mustUpsert(t, pa, d2)
	settle(t, pa)
	if h := getStatus(t, nsDefault, name).Status.Hostname; h != "still-on-a" {
		t.Fatalf("source's status not written while it owns the object: hostname %q", h)
	}

	if err := pa.Release(uuid); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	settle(t, pa)
	settle(t, pb)
	t.Logf("adopted %v after the release", time.Since(released).Round(time.Millisecond))
	o := getStatus(t, nsDefault, name)
	if o.UID != uid || o.Spec.NodeName != nodeB || o.Labels[v1alpha1.LabelNode] != nodeB || o.Status.Hostname != "on-b" {
		t.Fatalf("not adopted: uid %s->%s node %s labels %v hostname %q", uid, o.UID, o.Spec.NodeName, o.Labels, o.Status.Hostname)
	}
	if r := o.Status.Release; r == nil || r.NodeName != nodeA {
		t.Errorf("release record after the adoption %+v, want node %s's", r, nodeA)
	}
	// A later removal by the source must not delete the adopted object.
	if err := pa.Remove(uuid); err != nil {
		t.Fatal(err)
	}
	settle(t, pa)
	if o := getStatus(t, nsDefault, name); o.Spec.NodeName != nodeB {
		t.Fatalf("source took the object back: node %s", o.Spec.NodeName)
	}
}

// TestReleasedDomainComesBack: a failed migration brings the domain back before anyone adopted
// the object: the source publishes it again and removes its release marker, so that no other
// node may take it over any more.
func TestReleasedDomainComesBack(t *testing.T) {
	needEnv(t)
	ca := newCounting()
	pa := startPublisher(t, nodeA, ca)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-back")
	mustUpsert(t, pa, d)
	settle(t, pa)
	name := ObjectName("vm-back", uuid)
	if err := pa.Release(uuid); err != nil {
		t.Fatal(err)
	}
	settle(t, pa)
	if r := getStatus(t, nsDefault, name).Status.Release; r == nil || r.NodeName != nodeA {
		t.Fatalf("release marker %+v, want node %s's", r, nodeA)
	}
	d.Info.Hostname.Name = "back"
	mustUpsert(t, pa, d)
	settle(t, pa)
	o := getStatus(t, nsDefault, name)
	if o.Status.Release != nil || o.Spec.NodeName != nodeA || o.Status.Hostname != "back" {
		t.Fatalf("after the domain came back: release %+v node %s hostname %q", o.Status.Release, o.Spec.NodeName, o.Status.Hostname)
	}
	if n := upsertWrites(t, pa, ca, d); n != 0 {
		t.Errorf("%d writes for an unchanged status after the marker's removal", n)
	}
}

// TestReclaimAfterTakeOverWithoutRelease: another node relabels the object of a domain that runs
// here and was never released; the status watch reports that the object left this node's
// selection, and the publisher takes the same object back at once, with a Warning Event and the
// taken-over counter.
func TestReclaimAfterTakeOverWithoutRelease(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	rec := events.NewFakeRecorder(20)
	ca := newCounting()
	pa := startPublisher(t, nodeA, ca, func(o *Options) { o.Events = rec; o.ForeignRecheck = time.Hour })
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-hijacked")
	mustUpsert(t, pa, d)
	settle(t, pa)
	name := ObjectName("vm-hijacked", uuid)
	before := testutil.ToFloat64(takenOver)

	o := getStatus(t, nsDefault, name)
	o.Labels[v1alpha1.LabelNode], o.Spec.NodeName = nodeB, nodeB
	if err := env.Client.Update(ctx, o); err != nil {
		t.Fatal(err)
	}
	o.Status.Hostname = "forged-by-b"
	if err := env.Client.Status().Update(ctx, o); err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	pa.ObjectDeleted(uuid, o.UID) // the watch: it left node-a's selection
	settle(t, pa)
	t.Logf("taken back %v after the watch reported it", time.Since(taken).Round(time.Millisecond))
	got := getStatus(t, nsDefault, name)
	if got.UID != o.UID || got.Spec.NodeName != nodeA || got.Labels[v1alpha1.LabelNode] != nodeA ||
		got.Status.Hostname != d.Info.Hostname.Name {
		t.Fatalf("not taken back: uid %s->%s node %s labels %v hostname %q", o.UID, got.UID, got.Spec.NodeName,
			got.Labels, got.Status.Hostname)
	}
	if n := testutil.ToFloat64(takenOver) - before; n != 1 {
		t.Errorf("taken-over counter +%v, want +1", n)
	}
	select {
	case ev := <-rec.Events:
		if !strings.HasPrefix(ev, "Warning "+ReasonTakenOver+" ") || !strings.Contains(ev, nodeB) {
			t.Errorf("event %q", ev)
		}
	default:
		t.Error("no Warning Event")
	}
	select {
	case ev := <-rec.Events:
		t.Errorf("unexpected event %q", ev)
	default:
	}
}
