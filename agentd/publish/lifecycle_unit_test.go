package publish

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// An oVirt VM always defines the oVirt agent channel and QEMU keeps it open: an open channel on
// which no agent ever spoke is not an oVirt agent.
func TestOpenOvirtChannelWithoutAgentIsNotAnAgent(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	clk := newClock()
	d := sampleDesired("0123abcd-0000-4000-8000-000000000001", "x")
	d.Agents.OGA = guest.OGAState{Present: true, Channel: guest.ChannelConnected, APIVersion: 3}
	st := b.build(&d, nil, clk.at())
	if st.ActiveAgents != v1alpha1.ActiveAgentsQGA {
		t.Errorf("activeAgents = %s, want %s", st.ActiveAgents, v1alpha1.ActiveAgentsQGA)
	}
	oc := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionOvirtAgentConnected)
	if oc == nil || oc.Status != metav1.ConditionFalse || oc.Reason != ReasonChannelOpenNoAgent {
		t.Errorf("OvirtAgentConnected = %+v, want False/%s", oc, ReasonChannelOpenNoAgent)
	}
	if st.OvirtAgent == nil || st.OvirtAgent.ChannelState != v1alpha1.ChannelConnected {
		t.Errorf("the channel itself is open: ovirtAgent = %+v", st.OvirtAgent)
	}

	// Without QGA, the open silent channel alone connects no agent.
	d.Agents.QGA = guest.QGAState{}
	st = b.build(&d, st, clk.at())
	if st.ActiveAgents != v1alpha1.ActiveAgentsNone {
		t.Errorf("activeAgents = %s, want None", st.ActiveAgents)
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAgentConnected); c == nil ||
		c.Status != metav1.ConditionFalse {
		t.Errorf("AgentConnected = %+v, want False", c)
	}

	// The agent speaks: now it is there.
	d.Agents.OGA.Spoken = true
	st = b.build(&d, st, clk.at())
	oc = meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionOvirtAgentConnected)
	if st.ActiveAgents != v1alpha1.ActiveAgentsOGA || oc == nil || oc.Status != metav1.ConditionTrue ||
		oc.Reason != ReasonConnected {
		t.Errorf("after the agent spoke: activeAgents %s, OvirtAgentConnected %+v", st.ActiveAgents, oc)
	}
}

// A freeze is published, and the groups it keeps from refreshing are stale for that reason.
func TestFreezePublishedWithStaleReason(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	clk := newClock()
	d := sampleDesired("0123abcd-0000-4000-8000-000000000002", "x")
	d.Agents.QGA.FSFreeze = guest.FreezeFrozen
	d.Stale = map[guest.Group]bool{guest.GroupOS: true, guest.GroupNetwork: true}
	st := b.build(&d, nil, clk.at())
	if st.QemuAgent == nil || st.QemuAgent.FSFreezeStatus != "Frozen" {
		t.Errorf("qemuAgent = %+v", st.QemuAgent)
	}
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionStale)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonFilesystemsFrozen {
		t.Errorf("Stale = %+v", c)
	}
	for _, g := range st.DataGroups {
		want := v1alpha1.StaleReason("")
		if g.Name == "OS" || g.Name == "Network" {
			want = v1alpha1.StaleFilesystemsFrozen
		}
		if g.StaleReason != want || g.Stale != (want != "") {
			t.Errorf("group %s: stale %v reason %q, want reason %q", g.Name, g.Stale, g.StaleReason, want)
		}
	}
	d.Agents.QGA.FSFreeze = guest.FreezeThawed
	d.Stale = nil
	st = b.build(&d, st, clk.at())
	c = meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionStale)
	if st.QemuAgent.FSFreezeStatus != "Thawed" || c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("after the thaw: qemuAgent %+v, Stale %+v", st.QemuAgent, c)
	}
}

// Every stale data group says why: its agent stopped answering, or nothing reported it since
// agentd started (carried over from the object) — next to the frozen case above.
func TestStaleReasonPerGroup(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	clk := newClock()
	d := sampleDesired("0123abcd-0000-4000-8000-000000000003", "x")
	prev := b.build(&d, nil, clk.at())

	// after a restart: no OS data yet (carried over); the oVirt agent stopped answering
	d2 := sampleDesired("0123abcd-0000-4000-8000-000000000003", "x")
	d2.Info.OS = nil
	d2.Agents.OGA.Responsive = false
	d2.Stale = map[guest.Group]bool{guest.GroupSession: true, guest.GroupMemory: true, guest.GroupApplications: true}
	st := b.build(&d2, prev, clk.at())
	want := map[string]v1alpha1.StaleReason{
		"OS": v1alpha1.StaleNotReported, "Session": v1alpha1.StaleAgentNotResponsive,
		"Memory": v1alpha1.StaleAgentNotResponsive, "Applications": v1alpha1.StaleAgentNotResponsive,
	}
	for _, g := range st.DataGroups {
		if g.StaleReason != want[g.Name] || g.Stale != (want[g.Name] != "") {
			t.Errorf("group %s: stale %v reason %q, want %q", g.Name, g.Stale, g.StaleReason, want[g.Name])
		}
	}
	if st.OS == nil || st.OS.PrettyName != prev.OS.PrettyName {
		t.Errorf("carried OS lost: %+v", st.OS)
	}
}
