package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// quietGuest starts agentd on node with one QGA domain whose data never changes and waits until
// its status is published with the guest's data.
func quietGuest(t *testing.T, node, uuid, name string) (virt.Domain, *gav1.GuestAgentStatus) {
	t.Helper()
	d := withQGA(domain(uuid, name))
	q := servicefake.NewQGA()
	q.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	startNode(t, node, q, d)
	var gas *gav1.GuestAgentStatus
	NewWithT(t).Eventually(func() (err error) {
		if gas, err = getGAS(context.Background(), defaultNS, d.UUID); err == nil && gas.Status.Hostname != "guest.example.com" {
			err = fmt.Errorf("hostname %q", gas.Status.Hostname)
		}
		return err
	}).WithTimeout(20 * time.Second).Should(Succeed())
	return d, gas
}

// recreated waits until the status of uuid exists again as a new object (not oldUID) and passes check.
func recreated(t *testing.T, uuid string, oldUID types.UID, check func(*gav1.GuestAgentStatus) error) *gav1.GuestAgentStatus {
	t.Helper()
	var gas *gav1.GuestAgentStatus
	NewWithT(t).Eventually(func() error {
		var err error
		if gas, err = getGAS(context.Background(), defaultNS, uuid); err != nil {
			return err
		}
		if gas.UID == oldUID {
			return errors.New("still the old object")
		}
		return check(gas)
	}).WithTimeout(20 * time.Second).Should(Succeed())
	return gas
}

// TestDeletedStatusIsRecreated: a user deletes the GuestAgentStatus of a running domain whose guest
// data does not change. agentd sees the deletion and creates the object again at once with the
// full status and its history of executed commands, without waiting for the guest's data to
// change. A status whose node label is removed is taken back.
func TestDeletedStatusIsRecreated(t *testing.T) {
	ctx := context.Background()
	d, _ := quietGuest(t, "node-a", "dddddddd-0000-4000-8000-000000000001", "deleted-status")
	cmd := run(t, newCmd(defaultNS, "ping-before-delete", mustName(t, d.UUID), gav1.ActionPing))
	expect(t, cmd, gav1.PhaseSucceeded, gav1.ReasonCompleted)
	var old *gav1.GuestAgentStatus
	NewWithT(t).Eventually(func() error {
		var err error
		if old, err = getGAS(ctx, defaultNS, d.UUID); err == nil && len(old.Status.ExecutedCommands) == 0 {
			err = errors.New("the command is not in the history yet")
		}
		return err
	}).WithTimeout(10 * time.Second).Should(Succeed())

	if err := env.Client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	gas := recreated(t, d.UUID, old.UID, func(g *gav1.GuestAgentStatus) error {
		switch {
		case g.Status.Hostname != "guest.example.com" || g.Status.OS == nil:
			return fmt.Errorf("status not written yet: hostname %q", g.Status.Hostname)
		case len(g.Status.ExecutedCommands) != len(old.Status.ExecutedCommands) ||
			g.Status.ExecutedCommands[0].Key != old.Status.ExecutedCommands[0].Key:
			return fmt.Errorf("history %v, want %v", g.Status.ExecutedCommands, old.Status.ExecutedCommands)
		}
		return nil
	})
	if len(gas.OwnerReferences) != 1 || gas.OwnerReferences[0].Kind != "Node" {
		t.Fatalf("owner references %v", gas.OwnerReferences)
	}

	// Someone removes the node label: the object leaves agentd's selection; agentd puts it back.
	delete(gas.Labels, gav1.LabelNode)
	if err := env.Client.Update(ctx, gas); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		var o gav1.GuestAgentStatus
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(gas), &o); err != nil {
			return err
		}
		if o.UID != gas.UID || o.Labels[gav1.LabelNode] != "node-a" {
			return fmt.Errorf("uid %s (was %s), node label %q", o.UID, gas.UID, o.Labels[gav1.LabelNode])
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// TestNodeRecreatedOwnerFollows: the Node object is deleted and created again under the same name
// (a new UID) while agentd runs; the manager deletes the node's statuses and the garbage collector
// deletes any that name the old UID as owner (simulated here: envtest runs no garbage collector).
// agentd re-reads its node and creates them again owned by the new Node; with a cached UID they
// would be collected again and again.
func TestNodeRecreatedOwnerFollows(t *testing.T) {
	ctx := context.Background()
	const nodeName = "node-c"
	if err := env.Client.Create(ctx, testenv.Node(nodeName)); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	d, old := quietGuest(t, nodeName, "dddddddd-0000-4000-8000-000000000002", "node-recreated")

	var n corev1.Node
	if err := env.Client.Get(ctx, client.ObjectKey{Name: nodeName}, &n); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, &n); err != nil {
		t.Fatal(err)
	}
	fresh := testenv.Node(nodeName)
	NewWithT(t).Eventually(func() error { return env.Client.Create(ctx, fresh) }).WithTimeout(10 * time.Second).Should(Succeed())
	if fresh.UID == n.UID {
		t.Fatal("the node kept its UID")
	}
	// The manager's status collector deletes the node's statuses when the Node goes; agentd may
	// re-create one in between with the old UID (it re-reads its node at most every 2 s). The
	// garbage collector deletes every object owned by the old Node: the wait below does that for
	// it, until agentd writes one owned by the new Node.
	NewWithT(t).Eventually(func() error {
		g, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		for _, ref := range g.OwnerReferences {
			if ref.UID == n.UID {
				if err := env.Client.Delete(ctx, g, client.Preconditions{UID: &g.UID}); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
				return fmt.Errorf("object %s owned by the old node: collected", g.UID)
			}
		}
		if g.UID == old.UID {
			return errors.New("still the old object")
		}
		if len(g.OwnerReferences) != 1 || g.OwnerReferences[0].UID != fresh.UID {
			return fmt.Errorf("owner references %v, want the new node %s", g.OwnerReferences, fresh.UID)
		}
		if g.Status.Hostname != "guest.example.com" {
			return errors.New("status not written yet")
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// TestEditedStatusIsRestored: someone edits the status of a running domain whose guest data does
// not change (kubectl edit --subresource=status); agentd writes the guest's data back at once.
// A label of the user's own costs agentd one read and no write.
func TestEditedStatusIsRestored(t *testing.T) {
	ctx := context.Background()
	d, gas := quietGuest(t, "node-a", "dddddddd-0000-4000-8000-000000000003", "edited-status")
	gas.Status.Hostname = "forged.example.com"
	if err := env.Client.Status().Update(ctx, gas); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		g, err := getGAS(ctx, defaultNS, d.UUID)
		switch {
		case err != nil:
			return err
		case g.UID != gas.UID:
			return errors.New("the object was replaced")
		case g.Status.Hostname != "guest.example.com":
			return fmt.Errorf("hostname %q, want the guest's", g.Status.Hostname)
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())

	g, err := getGAS(ctx, defaultNS, d.UUID)
	if err != nil {
		t.Fatal(err)
	}
	g.Labels["team"] = "virt"
	if err := env.Client.Update(ctx, g); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Consistently(func() error {
		after, err := getGAS(ctx, defaultNS, d.UUID)
		if err != nil {
			return err
		}
		if after.ResourceVersion != g.ResourceVersion || after.Labels["team"] != "virt" {
			return fmt.Errorf("a user's label made agentd write (resourceVersion %s → %s) or was lost (%v)",
				g.ResourceVersion, after.ResourceVersion, after.Labels)
		}
		return nil
	}).WithTimeout(2 * time.Second).Should(Succeed())
}

// TestTakenOverStatusIsReclaimed: an agentd of another node (here an administrator acting like
// one, no admission policy installed) relabels the status of a domain that runs on node-a and
// that node-a never released. node-a's status watch sees the object leave its selection and
// takes the same object back within seconds (not after the foreign re-check interval), with a
// Warning Event on it.
func TestTakenOverStatusIsReclaimed(t *testing.T) {
	ctx := context.Background()
	d, gas := quietGuest(t, "node-a", "dddddddd-0000-4000-8000-0000000000a1", "taken-over")
	gas.Labels[gav1.LabelNode], gas.Spec.NodeName = "node-b", "node-b"
	if err := env.Client.Update(ctx, gas); err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	NewWithT(t).Eventually(func() error {
		g, err := getGAS(ctx, defaultNS, d.UUID)
		switch {
		case err != nil:
			return err
		case g.UID != gas.UID:
			return fmt.Errorf("re-created (uid %s → %s) instead of taken back", gas.UID, g.UID)
		case g.Spec.NodeName != "node-a" || g.Labels[gav1.LabelNode] != "node-a":
			return fmt.Errorf("node %q / label %q", g.Spec.NodeName, g.Labels[gav1.LabelNode])
		}
		return nil
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	t.Logf("taken back %v after the take-over", time.Since(taken).Round(time.Millisecond))
	NewWithT(t).Eventually(func() (int, error) {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(defaultNS)); err != nil {
			return 0, err
		}
		n := 0
		for _, e := range list.Items {
			if e.Regarding.Name == gas.Name && e.Reason == "TakenOverWithoutRelease" && e.Type == corev1.EventTypeWarning {
				n++
			}
		}
		return n, nil
	}).WithTimeout(10 * time.Second).Should(Equal(1))
}
