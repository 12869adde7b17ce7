package publish

import (
	. "github.com/onsi/gomega"

	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// The libvirt run state and its reason are published, and listed as a printer column.
func TestRunStatePublished(t *testing.T) {
	needEnv(t)
	p := startPublisher(t, nodeA, newCounting())
	uuid := newUUID()
	d := sampleDesired(uuid, "runstate")
	for _, rs := range []RunState{{"Paused", "Migration"}, {"ShutOff", "Destroyed"}, {"Running", "Unpaused"}, {"Bogus", "X"}} {
		d.RunState = &rs
		mustUpsert(t, p, d)
		settle(t, p)
		got := getStatus(t, nsDefault, ObjectName("runstate", uuid)).Status.Domain
		want := rs
		if want.State == "Bogus" {
			want.State = "Unknown"
		}
		if got == nil || got.State != want.State || got.Reason != want.Reason {
			t.Errorf("published %+v, read back %+v", want, got)
		}
	}

	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "guestagentstatuses.guestagent.io"}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	cols := map[string]string{}
	for _, v := range versions {
		list, _, _ := unstructured.NestedSlice(v.(map[string]any), "additionalPrinterColumns")
		for _, c := range list {
			m := c.(map[string]any)
			cols[m["name"].(string)], _ = m["jsonPath"].(string)
		}
	}
	if cols["State"] != ".status.domain.state" || cols["Reason"] != ".status.domain.reason" {
		t.Errorf("printer columns = %v", cols)
	}
}

// After a restart, a first status that knows less than the object (agents not probed yet) does
// not overwrite it during the startup grace; once the grace is over it is written.
func TestRestartDoesNotRegressDuringStartupGrace(t *testing.T) {
	needEnv(t)
	clk := newClock()
	uuid := newUUID()
	name := ObjectName("restart", uuid)
	good := sampleDesired(uuid, "restart")
	good.RunState = &RunState{State: "Running", Reason: "Booted"}
	p1 := startPublisher(t, nodeA, newCounting(), clk.opt)
	mustUpsert(t, p1, good)
	settle(t, p1)
	before := getStatus(t, nsDefault, name)

	// agentd restarts: its first view knows nothing about the agents yet.
	clk.advance(time.Minute)
	c := newCounting()
	p2 := startPublisher(t, nodeA, c, clk.opt, func(o *Options) { o.StartupGrace = time.Hour })
	unknown := good
	unknown.Info = nil
	unknown.Agents = AgentState{
		QGA: guest.QGAState{Present: true, Channel: guest.ChannelUnknown},
		OGA: guest.OGAState{Present: true, Channel: guest.ChannelUnknown},
	}
	mustUpsert(t, p2, unknown)
	NewWithT(t).Eventually(func() error {
		if p2.stats.decisions.Load() == 0 {
			return errors.New("the held status was never considered")
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
	if w := c.writes.Load(); w != 0 {
		t.Fatalf("%d writes during the startup grace", w)
	}
	if after := getStatus(t, nsDefault, name); after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("object rewritten during the startup grace: %+v", after.Status.Conditions)
	}

	// agentd knows better before the grace ends: what it publishes is what the object says.
	mustUpsert(t, p2, good)
	settle(t, p2)
	if w := c.writes.Load(); w != 0 {
		t.Errorf("%d writes for a status equal to the object's", w)
	}

	// After the grace a real regression is published.
	clk.advance(2 * time.Hour)
	mustUpsert(t, p2, unknown)
	settle(t, p2)
	st := getStatus(t, nsDefault, name).Status
	if !meta.IsStatusConditionFalse(st.Conditions, v1alpha1.ConditionAgentResponsive) {
		t.Errorf("after the grace: conditions %+v", st.Conditions)
	}
}
