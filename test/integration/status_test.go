package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga/ogafake"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// debianInfo is what both agents report for the same guest, each in its own terms.
func debianQGA() *guest.Info {
	return &guest.Info{
		Hostname: &guest.Hostname{Name: "guest.example.com"},
		OS: &guest.OS{Type: guest.OSTypeLinux, Name: "debian", ID: "debian", VersionID: "12.11", Variant: "bookworm",
			KernelRelease: "6.1.0-13-amd64", Arch: "x86_64", PrettyName: "debian 12.11"},
		Network: &guest.Network{Interfaces: []guest.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56",
			IPv4: []string{"192.0.2.10"}, IPv6: []string{"fe80::5054:ff:fe12:3456"}}}},
		Users: &guest.Users{},
	}
}

func qgaUp(version string) guest.QGAState {
	return guest.QGAState{Channel: guest.ChannelConnected, Version: version, Responsive: true,
		Supported: []string{"guest-get-osinfo", "guest-ping"}}
}

// TestUnifiedStatusWhicheverAgent: QGA-only, OGA-only and both-agents domains publish the same
// unified fields; only the debugging dataGroups say where they came from.
func TestUnifiedStatusWhicheverAgent(t *testing.T) {
	ctx := context.Background()
	gOGA, sockOGA := ogaGuest(t, ogafake.Config{}, nil)
	gBoth, sockBoth := ogaGuest(t, ogafake.Config{}, nil)
	qOnly := withQGA(domain("11111111-0000-4000-8000-000000000001", "qga-only"))
	oOnly := withOGA(domain("11111111-0000-4000-8000-000000000002", "oga-only"), sockOGA)
	both := withOGA(withQGA(domain("11111111-0000-4000-8000-000000000003", "both agents")), sockBoth)
	q := servicefake.NewQGA()
	q.Set(qOnly.UUID, debianQGA(), qgaUp("7.2.22"))
	q.Set(both.UUID, debianQGA(), qgaUp("7.2.22"))
	startNode(t, "node-a", q, qOnly, oOnly, both)
	// A desktop session event reaches the unified view (OGA-only data).
	NewWithT(t).Eventually(func() error {
		if !gOGA.Connected() || !gBoth.Connected() {
			return fmt.Errorf("host not connected to the fake guests yet")
		}
		return nil
	}).WithTimeout(10 * time.Second).Should(Succeed())
	for _, g := range []*ogafake.Guest{gOGA, gBoth} {
		if err := g.Send("session-lock", nil); err != nil {
			t.Fatal(err)
		}
	}

	want := map[string]gav1.ActiveAgents{qOnly.UUID: gav1.ActiveAgentsQGA, oOnly.UUID: gav1.ActiveAgentsOGA, both.UUID: gav1.ActiveAgentsBoth}
	for uuid, agents := range want {
		NewWithT(t).Eventually(func() error {
			gas, err := getGAS(ctx, defaultNS, uuid)
			if err != nil {
				return err
			}
			st := gas.Status
			switch {
			case st.ActiveAgents != agents:
				return fmt.Errorf("activeAgents %q, want %q", st.ActiveAgents, agents)
			case st.Hostname != "guest.example.com":
				return fmt.Errorf("hostname %q", st.Hostname)
			case st.OS == nil || st.OS.KernelRelease != "6.1.0-13-amd64" || st.OS.Type != "Linux" || st.OS.Arch != "x86_64":
				return fmt.Errorf("os %+v", st.OS)
			case len(st.Interfaces) != 1 || st.Interfaces[0].MAC != "52:54:00:12:34:56" || len(st.Interfaces[0].IPv4) != 1:
				return fmt.Errorf("interfaces %+v", st.Interfaces)
			case st.PrimaryIP != "192.0.2.10":
				return fmt.Errorf("primaryIP %q", st.PrimaryIP)
			case cond(gas, gav1.ConditionAgentConnected) != metav1.ConditionTrue:
				return fmt.Errorf("AgentConnected %q", cond(gas, gav1.ConditionAgentConnected))
			}
			if agents != gav1.ActiveAgentsQGA {
				// OGA-only data reaches the unified view whatever else the domain has.
				if st.Session != "Locked" || st.Memory == nil || st.Memory.TotalBytes == nil {
					return fmt.Errorf("OGA-only data missing: session=%q memory=%+v", st.Session, st.Memory)
				}
				if st.OvirtAgent == nil || st.OvirtAgent.APIVersion == nil || *st.OvirtAgent.APIVersion != 3 {
					return fmt.Errorf("negotiated OGA API version not published: %+v", st.OvirtAgent)
				}
			}
			if gas.Spec.NodeName != "node-a" || gas.Labels[gav1.LabelNode] != "node-a" {
				return fmt.Errorf("node identity %q / %v", gas.Spec.NodeName, gas.Labels)
			}
			return nil
		}).WithTimeout(20 * time.Second).Should(Succeed())
	}
	gas, _ := getGAS(ctx, defaultNS, both.UUID)
	if gas.Spec.DomainName != "both agents" {
		t.Errorf("raw domain name must be kept in spec, got %q", gas.Spec.DomainName)
	}
	if len(gas.OwnerReferences) != 1 || gas.OwnerReferences[0].Kind != "Node" || gas.OwnerReferences[0].Name != "node-a" {
		t.Errorf("owner reference must be the Node: %+v", gas.OwnerReferences)
	}
}

// TestDisconnectKeepsDataAndRemovalDeletes: an agent that goes away flips the conditions but the
// last known data stays (marked stale); a domain that is gone loses its object.
func TestDisconnectKeepsDataAndRemovalDeletes(t *testing.T) {
	ctx := context.Background()
	d := withQGA(domain("22222222-0000-4000-8000-000000000001", "flappy"))
	n := startNode(t, "node-a", nil)
	n.qga.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	n.watcher.Set(d, virt.LifecycleStarted)
	NewWithT(t).Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		if cond(gas, gav1.ConditionQemuAgentConnected) != metav1.ConditionTrue {
			return fmt.Errorf("QemuAgentConnected %q", cond(gas, gav1.ConditionQemuAgentConnected))
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())

	st := qgaUp("7.2.22")
	st.Channel, st.Responsive = guest.ChannelDisconnected, false
	n.qga.Set(d.UUID, debianQGA(), st)
	n.watcher.SetChannel(d.UUID, guest.ChannelDisconnected)
	NewWithT(t).Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		switch {
		case cond(gas, gav1.ConditionQemuAgentConnected) != metav1.ConditionFalse:
			return fmt.Errorf("QemuAgentConnected %q", cond(gas, gav1.ConditionQemuAgentConnected))
		case cond(gas, gav1.ConditionStale) != metav1.ConditionTrue:
			return fmt.Errorf("Stale %q", cond(gas, gav1.ConditionStale))
		case gas.Status.Hostname != "guest.example.com" || gas.Status.OS == nil:
			return fmt.Errorf("data blanked on disconnect: %+v", gas.Status)
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// The transition is also an Event on the status (events.k8s.io), once.
	NewWithT(t).Eventually(func() error {
		evs := &eventsv1.EventList{}
		if err := env.Client.List(ctx, evs, client.InNamespace(defaultNS)); err != nil {
			return err
		}
		n := 0
		for _, e := range evs.Items {
			if e.Regarding.Name == "flappy-22222222" && e.Reason == "AgentDisconnected" {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d AgentDisconnected events", n)
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// The domain stops; the QGA side drops what it knew. The status keeps the last known data.
	stopped := d
	stopped.State = virt.StateShutOff
	n.qga.Set(d.UUID, nil, st)
	n.watcher.Set(stopped, virt.LifecycleStopped)
	staleAndKept := func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		if gas.Status.Hostname != "guest.example.com" || gas.Status.OS == nil || cond(gas, gav1.ConditionStale) != metav1.ConditionTrue {
			return fmt.Errorf("data blanked when the domain stopped: %+v", gas.Status)
		}
		return nil
	}
	NewWithT(t).Eventually(staleAndKept).WithTimeout(20 * time.Second).Should(Succeed())
	NewWithT(t).Consistently(staleAndKept).WithTimeout(time.Second).Should(Succeed())

	n.watcher.Remove(d.UUID, virt.LifecycleUndefined)
	NewWithT(t).Eventually(func() error {
		if _, err := getGAS(ctx, defaultNS, d.UUID); err == nil {
			return fmt.Errorf("status of a removed domain still exists")
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// TestPlacementAndOptOut: a domain's metadata places its status in another namespace, or opts
// it out.
func TestPlacementAndOptOut(t *testing.T) {
	ctx := context.Background()
	placed := withQGA(domain("33333333-0000-4000-8000-000000000001", "placed"))
	placed.Placement.Namespace = "tenant-b"
	hidden := withQGA(domain("33333333-0000-4000-8000-000000000002", "hidden"))
	hidden.Placement.Publish = false
	n := startNode(t, "node-a", nil)
	n.qga.Set(placed.UUID, debianQGA(), qgaUp("7.2.22"))
	n.qga.Set(hidden.UUID, debianQGA(), qgaUp("7.2.22"))
	n.watcher.Set(placed, virt.LifecycleStarted)
	n.watcher.Set(hidden, virt.LifecycleStarted)
	NewWithT(t).Eventually(func() error {
		_, err := getGAS(ctx, "tenant-b", placed.UUID)
		return err
	}).WithTimeout(20 * time.Second).Should(Succeed())
	// The opted-out domain, started with the placed one, is never published.
	NewWithT(t).Consistently(func() error {
		for _, ns := range []string{defaultNS, "tenant-a", "tenant-b"} {
			if _, err := getGAS(ctx, ns, hidden.UUID); err == nil {
				return fmt.Errorf("opted-out domain published in %s", ns)
			}
		}
		return nil
	}).WithTimeout(time.Second).Should(Succeed())
}

// TestMigrationHandOver: two agentd instances on two nodes, one domain moving between them,
// keep one object whose node follows the domain; the source does not delete it.
func TestMigrationHandOver(t *testing.T) {
	ctx := context.Background()
	d := withQGA(domain("44444444-0000-4000-8000-000000000001", "migrant"))
	qa := servicefake.NewQGA()
	qa.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	a := startNode(t, "node-a", qa, d)
	b := startNode(t, "node-b", nil)
	var first *gav1.GuestAgentStatus
	NewWithT(t).Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		first = gas
		return err
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// Destination: the domain lands on node-b; source: it migrated out.
	b.qga.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	b.watcher.Set(d, virt.LifecycleMigratedIn)
	src := d
	src.State = virt.StateShutOff
	a.watcher.Set(src, virt.LifecycleMigratedOut)
	a.watcher.Remove(d.UUID, virt.LifecycleMigratedOut)

	NewWithT(t).Eventually(func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		if gas.Spec.NodeName != "node-b" || gas.Labels[gav1.LabelNode] != "node-b" {
			return fmt.Errorf("node %q / label %q", gas.Spec.NodeName, gas.Labels[gav1.LabelNode])
		}
		if gas.UID != first.UID {
			return fmt.Errorf("the object was re-created (uid %s → %s); migration must keep it", first.UID, gas.UID)
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
	// The source's removal must not delete the adopted object, even later.
	NewWithT(t).Consistently(func() error {
		gas, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil || gas.Spec.NodeName != "node-b" {
			return fmt.Errorf("after hand-over: %v %+v", err, gas)
		}
		return nil
	}).WithTimeout(time.Second).Should(Succeed())
}
