package publish

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// Tests of what the publisher keeps besides the objects: the executed-command history, agent
// connection Events and the persisted oVirt API version. They need no API server (a fake client;
// the publisher is not running).

func fakeClient(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
}

func unitPublisher(t *testing.T, c client.Client, rec events.EventRecorder) *Publisher {
	t.Helper()
	p, err := New(Options{NodeName: nodeA, DefaultNamespace: nsDefault, Client: c, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func desiredHistory(p *Publisher, uuid string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keys []string
	if e := p.entries[uuid]; e != nil && e.desired != nil {
		for _, ec := range e.desired.ExecutedCommands {
			keys = append(keys, ec.Key)
		}
	}
	return keys
}

func TestRecordExecutedHistory(t *testing.T) {
	p := unitPublisher(t, fakeClient(t, interceptor.Funcs{}), nil)
	uuid := "0e7e0000-0000-4000-8000-00000000000a"
	d := sampleDesired(uuid, "vm")
	d.ExecutedCommands = nil
	ec := func(k string) v1alpha1.ExecutedCommand {
		return v1alpha1.ExecutedCommand{Key: k, Action: v1alpha1.ActionPing, Time: metav1.Now()}
	}

	p.RecordExecuted(uuid, ec("before-first-sight")) // kept for the first Upsert
	mustUpsert(t, p, d)
	if got := desiredHistory(p, uuid); !slices.Equal(got, []string{"before-first-sight"}) {
		t.Fatalf("history after the first Upsert %v", got)
	}
	genBefore := p.entries[uuid].gen
	p.RecordExecuted(strings.ToUpper(uuid), ec("k1")) // UUIDs are normalised
	if got := desiredHistory(p, uuid); !slices.Equal(got, []string{"before-first-sight", "k1"}) {
		t.Errorf("history right after RecordExecuted %v", got)
	}
	if p.entries[uuid].gen == genBefore || p.Pending() != 1 {
		t.Errorf("RecordExecuted did not schedule a write (gen %d → %d, pending %d)", genBefore, p.entries[uuid].gen, p.Pending())
	}
	mustUpsert(t, p, d) // the caller passes no history: the recorded one stays
	if got := desiredHistory(p, uuid); !slices.Equal(got, []string{"before-first-sight", "k1"}) {
		t.Errorf("history after a later Upsert %v", got)
	}

	for i := range v1alpha1.MaxExecutedCommands + 5 {
		p.RecordExecuted(uuid, ec(string(rune('a'+i))))
	}
	p.mu.Lock()
	n := len(p.executed[uuid])
	p.mu.Unlock()
	if n != v1alpha1.MaxExecutedCommands {
		t.Errorf("kept %d recorded commands, want the newest %d", n, v1alpha1.MaxExecutedCommands)
	}

	if err := p.Remove(uuid); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, p, d) // the domain came back: its history is on the object, not in memory
	if got := desiredHistory(p, uuid); len(got) != 0 {
		t.Errorf("history after the domain left and came back %v, want none", got)
	}

	p.RecordExecuted("not-a-uuid", ec("x")) // logged, ignored
}

func TestConnectionEvents(t *testing.T) {
	rec := events.NewFakeRecorder(20)
	p := unitPublisher(t, fakeClient(t, interceptor.Funcs{}), rec)
	uuid := "0e7e0000-0000-4000-8000-00000000000b"
	d := sampleDesired(uuid, "vm")
	set := func(qga, oga guest.ChannelState, optOut bool) {
		d.Agents.QGA.Channel, d.Agents.OGA.Channel, d.Domain.OptOut = qga, oga, optOut
		mustUpsert(t, p, d)
	}
	drain := func() []string {
		var out []string
		for {
			select {
			case e := <-rec.Events:
				out = append(out, e)
			default:
				return out
			}
		}
	}
	conn, disc := guest.ChannelConnected, guest.ChannelDisconnected

	set(conn, conn, false) // first sight: no transition
	set(conn, conn, false) // unchanged
	if got := drain(); len(got) != 0 {
		t.Errorf("events without a transition: %q", got)
	}
	set(disc, conn, false)
	set(conn, disc, false)
	want := []string{
		"Warning AgentDisconnected QEMU guest agent disconnected",
		"Normal AgentConnected QEMU guest agent connected",
		"Warning AgentDisconnected oVirt guest agent disconnected",
	}
	if got := drain(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	set(disc, disc, true) // opted out: no object, no events
	if got := drain(); len(got) != 0 {
		t.Errorf("events of an opted-out domain: %q", got)
	}
	if err := p.Release(uuid); err != nil {
		t.Fatal(err)
	}
	set(conn, conn, false) // back after a failed migration: first sight again
	if got := drain(); len(got) != 0 {
		t.Errorf("events at first sight after a release: %q", got)
	}
}

func TestOvirtAPIVersion(t *testing.T) {
	const (
		persisted = "0e7e0000-0000-4000-8000-00000000000c"
		later     = "0e7e0000-0000-4000-8000-00000000000d"
		none      = "0e7e0000-0000-4000-8000-00000000000e"
	)
	status := func(uuid string, v *int32) *v1alpha1.GuestAgentStatus {
		s := &v1alpha1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Name: "vm-" + uuid[len(uuid)-1:], Namespace: nsDefault,
			Labels: map[string]string{v1alpha1.LabelDomainUUID: uuid}}, Spec: v1alpha1.GuestAgentStatusSpec{DomainUUID: uuid}}
		if v != nil {
			s.Status.OvirtAgent = &v1alpha1.OvirtAgentInfo{APIVersion: v}
		}
		return s
	}
	ctx := context.Background()
	errDown := errors.New("apiserver down")

	t.Run("listed once, then one labelled list per unknown domain", func(t *testing.T) {
		var lists atomic.Int32
		c := fakeClient(t, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, o ...client.ListOption) error {
			lists.Add(1)
			return c.List(ctx, l, o...)
		}}, status(persisted, ptr.To[int32](3)), status(none, nil))
		p := unitPublisher(t, c, nil)
		if v, err := p.OvirtAPIVersion(ctx, persisted); v != 3 || err != nil {
			t.Errorf("persisted: %d, %v; want 3", v, err)
		}
		if err := c.Create(ctx, status(later, ptr.To[int32](2))); err != nil {
			t.Fatal(err)
		}
		if v, err := p.OvirtAPIVersion(ctx, later); v != 2 || err != nil {
			t.Errorf("migrated in later: %d, %v; want 2", v, err)
		}
		if v, err := p.OvirtAPIVersion(ctx, none); v != 0 || err != nil {
			t.Errorf("no version persisted: %d, %v; want 0", v, err)
		}
		if n := lists.Load(); n != 3 {
			t.Errorf("%d lists, want 3 (one full, two labelled)", n)
		}
	})

	t.Run("failed reads are errors, not version 0", func(t *testing.T) {
		var fail atomic.Bool
		fail.Store(true)
		c := fakeClient(t, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, o ...client.ListOption) error {
			if fail.Load() {
				return errDown
			}
			return c.List(ctx, l, o...)
		}}, status(persisted, ptr.To[int32](3)))
		p := unitPublisher(t, c, nil)
		if v, err := p.OvirtAPIVersion(ctx, persisted); !errors.Is(err, errDown) || v != 0 {
			t.Errorf("with the API server down: %d, %v; want an error", v, err)
		}
		fail.Store(false) // the full listing failed once: later domains are read one by one
		if v, err := p.OvirtAPIVersion(ctx, persisted); v != 3 || err != nil {
			t.Errorf("after the API server came back: %d, %v; want 3", v, err)
		}
	})
}
