package publish

import (
	"testing"
	"time"

	"guestagent.io/operator/api/v1alpha1"
)

func TestReleaseWaitBackoff(t *testing.T) {
	want := []time.Duration{250 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
		2 * time.Second, 5 * time.Second, 5 * time.Second}
	for waits, w := range want {
		if got := releaseWait(waits); got != w {
			t.Errorf("releaseWait(%d) = %v, want %v", waits, got, w)
		}
	}
	if got := releaseWait(1 << 20); got != releaseWaitMax {
		t.Errorf("releaseWait after many waits = %v, want %v", got, releaseWaitMax)
	}
}

// TestReleasedBy: an object is released only by the node it names, and only while it carries
// that node's marker (a marker of an earlier hand-over authorises nothing).
func TestReleasedBy(t *testing.T) {
	obj := func(node, marker string) *v1alpha1.GuestAgentStatus {
		o := &v1alpha1.GuestAgentStatus{Spec: v1alpha1.GuestAgentStatusSpec{NodeName: node}}
		if marker != "" {
			o.Status.Release = &v1alpha1.StatusRelease{NodeName: marker}
		}
		return o
	}
	cases := []struct {
		node, marker, by string
		want             bool
	}{
		{nodeA, nodeA, nodeA, true},
		{nodeA, "", nodeA, false},
		{nodeB, nodeA, nodeA, false}, // adopted by node-b after node-a's release: a record only
		{nodeB, nodeA, nodeB, false},
		{nodeA, nodeB, nodeA, false},
	}
	for _, c := range cases {
		if got := releasedBy(obj(c.node, c.marker), c.by); got != c.want {
			t.Errorf("object of %s with marker %q released by %s: %v, want %v", c.node, c.marker, c.by, got, c.want)
		}
	}
}
