package publish

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"guestagent.io/operator/api/v1alpha1"
)

// The lifecycle's whole transition table, state × event → next state + action, written out so
// that a change of any transition is a visible change here. No API server involved.
func TestObjectLifecycleTransitions(t *testing.T) {
	type out struct {
		next objState
		act  objAction
	}
	states := []objState{stUnknown, stSeeded, stOwned, stMisowned, stLost, stForeign, stOptedOut, stAbsent}
	// One row per event, one column per state in the order of states.
	table := map[objEvent][8]out{
		evSync: {
			{stUnknown, actRead}, {stSeeded, actUseSeed}, {stOwned, actNone}, {stMisowned, actAdopt},
			{stLost, actReread}, {stForeign, actNone}, {stUnknown, actRead}, {stAbsent, actCreate},
		},
		evMoved: {
			{stUnknown, actRead}, {stSeeded, actUseSeed}, {stUnknown, actMove}, {stUnknown, actMove},
			{stLost, actReread}, {stForeign, actMove}, {stUnknown, actRead}, {stAbsent, actCreate},
		},
		evRecheckDue: {
			{stUnknown, actRead}, {stSeeded, actUseSeed}, {stOwned, actNone}, {stMisowned, actAdopt},
			{stLost, actReread}, {stForeign, actRecheck}, {stUnknown, actRead}, {stAbsent, actCreate},
		},
		evFound: {
			{stOwned, actNone}, {stOwned, actNone}, {stOwned, actNone}, {stOwned, actNone},
			{stOwned, actNone}, {stOwned, actNone}, {stOwned, actNone}, {stOwned, actNone},
		},
		evFoundStale: {
			{stMisowned, actAdopt}, {stMisowned, actAdopt}, {stMisowned, actAdopt}, {stMisowned, actAdopt},
			{stMisowned, actAdopt}, {stMisowned, actAdopt}, {stMisowned, actAdopt}, {stMisowned, actAdopt},
		},
		evOtherNode: {
			{stUnknown, actNone}, {stSeeded, actNone}, {stForeign, actNone}, {stForeign, actNone},
			{stForeign, actNone}, {stForeign, actNone}, {stOptedOut, actNone}, {stAbsent, actNone},
		},
		evMissing: {
			{stUnknown, actCreate}, {stUnknown, actNone}, {stUnknown, actNone}, {stUnknown, actNone},
			{stUnknown, actCreate}, {stUnknown, actCreate}, {stUnknown, actNone}, {stUnknown, actCreate},
		},
		evWatch: {
			{stUnknown, actNone}, {stSeeded, actNone}, {stLost, actReread}, {stLost, actReread},
			{stLost, actReread}, {stLost, actReread}, {stOptedOut, actNone}, {stAbsent, actNone},
		},
		evListed: {
			{stSeeded, actNone}, {stSeeded, actNone}, {stOwned, actNone}, {stMisowned, actNone},
			{stLost, actNone}, {stForeign, actNone}, {stOptedOut, actNone}, {stSeeded, actNone},
		},
		evOptOut: {
			{stOptedOut, actDelete}, {stOptedOut, actDelete}, {stOptedOut, actDelete}, {stOptedOut, actDelete},
			{stOptedOut, actDelete}, {stOptedOut, actDelete}, {stOptedOut, actNone}, {stOptedOut, actDelete},
		},
		evCleanup: {
			{stUnknown, actNone}, {stUnknown, actDelete}, {stUnknown, actDelete}, {stUnknown, actDelete},
			{stUnknown, actDelete}, {stUnknown, actDelete}, {stOptedOut, actNone}, {stAbsent, actNone},
		},
		evNotListed: {
			{stAbsent, actNone}, {stSeeded, actNone}, {stOwned, actNone}, {stMisowned, actNone},
			{stLost, actNone}, {stForeign, actNone}, {stOptedOut, actNone}, {stAbsent, actNone},
		},
		evExists: {
			{stUnknown, actRead}, {stUnknown, actRead}, {stUnknown, actRead}, {stUnknown, actRead},
			{stUnknown, actRead}, {stUnknown, actRead}, {stUnknown, actRead}, {stUnknown, actRead},
		},
	}
	if len(table) != len(eventNames) || len(states) != len(stateNames) {
		t.Fatalf("the table covers %d of %d events and %d of %d states", len(table), len(eventNames),
			len(states), len(stateNames))
	}
	for ev, row := range table {
		for i, s := range states {
			next, act := step(s, ev)
			if want := row[i]; next != want.next || act != want.act {
				t.Errorf("%s × %s → %s, %s; want %s, %s", s, ev, next, act, want.next, want.act)
			}
		}
	}
}

// Paths through the lifecycle as syncs walk them, event by event.
func TestObjectLifecyclePaths(t *testing.T) {
	type hop struct {
		ev   objEvent
		next objState
		act  objAction
	}
	type path struct {
		from objState
		hops []hop
	}
	paths := map[string]path{
		"first sight, no object: read, create": {stUnknown, []hop{
			{evSync, stUnknown, actRead}, {evMissing, stUnknown, actCreate}, {evFound, stOwned, actNone},
			{evSync, stOwned, actNone},
		}},
		"new domain after a startup listing without it: create at once": {stUnknown, []hop{
			{evNotListed, stAbsent, actNone}, {evSync, stAbsent, actCreate}, {evFound, stOwned, actNone},
		}},
		"not listed, but created elsewhere since: the create fails, then read and adopt": {stUnknown, []hop{
			{evNotListed, stAbsent, actNone}, {evSync, stAbsent, actCreate}, {evExists, stUnknown, actRead},
			{evFoundStale, stMisowned, actAdopt}, {evFound, stOwned, actNone},
		}},
		"migrated in: the object names the source node and is adopted": {stUnknown, []hop{
			{evSync, stUnknown, actRead}, {evFoundStale, stMisowned, actAdopt}, {evFound, stOwned, actNone},
		}},
		"startup listing, then the watch saw it deleted: re-read, re-create": {stUnknown, []hop{
			{evListed, stSeeded, actNone}, {evSync, stSeeded, actUseSeed}, {evFound, stOwned, actNone},
			{evWatch, stLost, actReread}, {evMissing, stUnknown, actCreate}, {evFound, stOwned, actNone},
		}},
		"adopted by another node, re-read until it is gone, then created again": {stOwned, []hop{
			{evSync, stOwned, actNone}, {evOtherNode, stForeign, actNone}, {evSync, stForeign, actNone},
			{evRecheckDue, stForeign, actRecheck}, {evMissing, stUnknown, actCreate}, {evFound, stOwned, actNone},
		}},
		"placement changed: move, then read and create at the new place": {stOwned, []hop{
			{evMoved, stUnknown, actMove}, {evSync, stUnknown, actRead}, {evMissing, stUnknown, actCreate},
		}},
		"opt-out deletes once; opting in again reads the target place": {stOwned, []hop{
			{evOptOut, stOptedOut, actDelete}, {evOptOut, stOptedOut, actNone}, {evWatch, stOptedOut, actNone},
			{evSync, stUnknown, actRead},
		}},
		"domain removed": {stOwned, []hop{
			{evCleanup, stUnknown, actDelete}, {evCleanup, stUnknown, actNone},
		}},
	}
	for name, pt := range paths {
		e := &entry{state: pt.from}
		for i, h := range pt.hops {
			if act := e.on(h.ev); e.state != h.next || act != h.act {
				t.Errorf("%s: hop %d (%s) → %s, %s; want %s, %s", name, i, h.ev, e.state, act, h.next, h.act)
				break
			}
		}
	}
}

func TestObjectLifecycleNames(t *testing.T) {
	for s := range objState(len(stateNames)) {
		if s.String() == "" || s.String() == "objState(?)" {
			t.Errorf("state %d has no name", s)
		}
	}
	if got := objState(len(stateNames)).String(); got != "objState(?)" {
		t.Errorf("out-of-range state prints %q", got)
	}
	if objEvent(len(eventNames)).String() != "objEvent(?)" || objAction(len(actionNames)).String() != "objAction(?)" {
		t.Error("out-of-range event or action has a name")
	}
}

// ensureObject runs the actions the table asks for against an API (a fake client, no API server):
// from each state, with what the API holds, it ends in the expected state with the expected
// objects.
func TestEnsureObjectFollowsTheLifecycle(t *testing.T) {
	const uuid = "0e7e0000-0000-4000-8000-0000000000e1"
	d := sampleDesired(uuid, "vm")
	target := client.ObjectKey{Namespace: nsDefault, Name: ObjectName("vm", uuid)}
	old := client.ObjectKey{Namespace: nsTenant, Name: target.Name}
	owner := &ownerRef{name: nodeA, uid: "uid-node-a"}
	object := func(at client.ObjectKey, node string) *v1alpha1.GuestAgentStatus {
		o := &v1alpha1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Namespace: at.Namespace, Name: at.Name,
			Labels: map[string]string{v1alpha1.LabelNode: node, v1alpha1.LabelDomainUUID: uuid}}}
		o.Spec = v1alpha1.GuestAgentStatusSpec{DomainName: "vm", DomainUUID: uuid, NodeName: node}
		if node == nodeA {
			o.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: nodeA, UID: owner.uid}}
		}
		return o
	}
	released := func(o *v1alpha1.GuestAgentStatus, by string) *v1alpha1.GuestAgentStatus {
		o.Status.Release = &v1alpha1.StatusRelease{NodeName: by, Time: metav1.Now()}
		return o
	}
	cases := []struct {
		name      string
		from      objState
		at        client.ObjectKey // where the entry places the object
		seed      *v1alpha1.GuestAgentStatus
		recheckAt time.Duration // since the last re-read of a foreign object
		api       []client.Object
		want      objState
		wantNodes map[client.ObjectKey]string // node named by each object afterwards; "" = absent
		wantReads int64
		wantErr   error
	}{
		{name: "unknown, nothing there: created", from: stUnknown,
			want: stOwned, wantNodes: map[client.ObjectKey]string{target: nodeA}, wantReads: 1},
		{name: "unknown, another node's released object: adopted", from: stUnknown,
			api:  []client.Object{released(object(target, nodeB), nodeB)},
			want: stOwned, wantNodes: map[client.ObjectKey]string{target: nodeA}, wantReads: 2},
		{name: "unknown, another node's object not released: waits", from: stUnknown, api: []client.Object{object(target, nodeB)},
			want: stMisowned, wantNodes: map[client.ObjectKey]string{target: nodeB}, wantReads: 2, wantErr: errAwaitRelease},
		{name: "seeded: used without a read", from: stSeeded, seed: object(target, nodeA),
			want: stOwned, wantNodes: map[client.ObjectKey]string{target: ""}, wantReads: 0},
		{name: "owned at an old place: moved", from: stOwned, at: old, api: []client.Object{object(old, nodeA)},
			want: stOwned, wantNodes: map[client.ObjectKey]string{old: "", target: nodeA}, wantReads: 2},
		{name: "lost and gone: created again", from: stLost, at: target,
			want: stOwned, wantNodes: map[client.ObjectKey]string{target: nodeA}, wantReads: 1},
		{name: "lost to another node after this node released it: foreign", from: stLost, at: target,
			api:  []client.Object{released(object(target, nodeB), nodeA)},
			want: stForeign, wantNodes: map[client.ObjectKey]string{target: nodeB}, wantReads: 1},
		{name: "taken over by another node without a release: taken back", from: stLost, at: target,
			api:  []client.Object{object(target, nodeB)},
			want: stOwned, wantNodes: map[client.ObjectKey]string{target: nodeA}, wantReads: 2},
		{name: "foreign, re-read not due: left alone", from: stForeign, at: target, recheckAt: time.Second,
			want: stForeign, wantNodes: map[client.ObjectKey]string{target: ""}, wantReads: 0},
		{name: "foreign, re-read due, gone: created", from: stForeign, at: target, recheckAt: time.Hour,
			want: stOwned, wantNodes: map[client.ObjectKey]string{target: nodeA}, wantReads: 1},
		{name: "foreign at an old place: not deleted, new place re-read", from: stForeign, at: old,
			recheckAt: time.Hour, api: []client.Object{object(old, nodeB)},
			want: stOwned, wantNodes: map[client.ObjectKey]string{old: nodeB, target: nodeA}, wantReads: 2},
		{name: "opted out, published again: read, created", from: stOptedOut, at: target,
			want: stOwned, wantNodes: map[client.ObjectKey]string{target: nodeA}, wantReads: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reads atomic.Int64
			c := fakeClient(t, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey,
				o client.Object, opts ...client.GetOption) error {
				reads.Add(1)
				return c.Get(ctx, k, o, opts...)
			}}, tc.api...)
			clk := newClock()
			p, err := New(Options{NodeName: nodeA, DefaultNamespace: nsDefault, Client: c, Clock: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			p.owner = owner
			dd := d
			e := &entry{uuid: uuid, desired: &dd, state: tc.from, ns: tc.at.Namespace, name: tc.at.Name, seedObj: tc.seed,
				checkedAt: clk.now().Add(-tc.recheckAt)}
			if err := p.ensureObject(context.Background(), e, &dd); !errors.Is(err, tc.wantErr) {
				t.Fatalf("ensureObject: %v, want %v", err, tc.wantErr)
			}
			if e.state != tc.want || e.state != stForeign && (e.ns != target.Namespace || e.name != target.Name) {
				t.Errorf("state %s at %s/%s, want %s at %s", e.state, e.ns, e.name, tc.want, target)
			}
			if got := reads.Load(); got != tc.wantReads {
				t.Errorf("%d reads, want %d", got, tc.wantReads)
			}
			for at, node := range tc.wantNodes {
				var o v1alpha1.GuestAgentStatus
				err := c.Get(context.Background(), at, &o)
				switch {
				case node == "" && !apierrors.IsNotFound(err):
					t.Errorf("%s: exists (%v), want none", at, err)
				case node != "" && err != nil:
					t.Errorf("%s: %v", at, err)
				case node != "" && (o.Spec.NodeName != node || o.Labels[v1alpha1.LabelNode] != node):
					t.Errorf("%s names %s (label %s), want %s", at, o.Spec.NodeName, o.Labels[v1alpha1.LabelNode], node)
				}
			}
		})
	}
}
