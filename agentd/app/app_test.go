package app

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// The assembly itself (Build, the status watch, the startup cleanup) runs against a real API
// server in test/integration; these tests cover the adapters and the View → Desired mapping.

func TestDesired(t *testing.T) {
	v := service.View{
		Domain:  virt.Domain{UUID: "u1", Name: "vm1", Placement: virt.Placement{Namespace: "tenant", Publish: false}},
		Info:    &guest.Info{Hostname: &guest.Hostname{Name: "h"}},
		Sources: map[guest.Group]gav1.DataSource{guest.GroupHostname: gav1.SourceQemu},
		Stale:   map[guest.Group]bool{guest.GroupHostname: true},
		QGA:     guest.QGAState{Channel: guest.ChannelConnected, Version: "9.2.0"},
		OGA:     guest.OGAState{Present: true, APIVersion: 3},
	}
	d := Desired(v)
	if d.Domain.UUID != "u1" || d.Domain.Name != "vm1" || d.Domain.Namespace != "tenant" || !d.Domain.OptOut {
		t.Errorf("domain %+v", d.Domain)
	}
	if d.Info != v.Info || d.Sources[guest.GroupHostname] != gav1.SourceQemu || !d.Stale[guest.GroupHostname] {
		t.Errorf("data not passed on: %+v", d)
	}
	if d.Agents.QGA.Version != "9.2.0" || d.Agents.OGA.APIVersion != 3 || len(d.ExecutedCommands) != 0 {
		t.Errorf("agents %+v, history %v", d.Agents, d.ExecutedCommands)
	}
	v.Domain.Placement.Publish = true
	if Desired(v).Domain.OptOut {
		t.Error("a published domain is opted out")
	}
}

func TestChangeFeed(t *testing.T) {
	var mu sync.Mutex
	var got []string
	f := &changeFeed{}
	f.notify("before") // nobody listens yet: dropped
	for _, name := range []string{"a", "b"} {
		f.Subscribe(func(uuid string) {
			mu.Lock()
			got = append(got, name+":"+uuid)
			mu.Unlock()
		})
	}
	f.notify("u1")
	if want := []string{"a:u1", "b:u1"}; !slices.Equal(got, want) {
		t.Errorf("notified %v, want %v", got, want)
	}
}

// The oVirt adapter over a Listener that is not running: serving, state and requests by UUID.
func TestOGAAdapter(t *testing.T) {
	l, a := newOGA(oga.ListenerOptions{Log: logr.Discard()})
	const uuid = "0e7e0000-0000-4000-8000-000000000003"
	if a.Served(uuid) {
		t.Fatal("served before Serve")
	}
	if _, ok := a.State(uuid); ok || a.Info(uuid) != nil {
		t.Error("state or data of a domain not served")
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"shutdown": a.Shutdown(ctx, uuid, 0, "bye", false),
		"hook":     a.LifecycleEvent(ctx, uuid, "after_migration", false, false, time.Second),
		"lock":     a.LockScreen(ctx, uuid),
		"logoff":   a.LogOff(ctx, uuid),
	} {
		if !errors.Is(err, oga.ErrNotConnected) {
			t.Errorf("%s to a domain not served: %v, want ErrNotConnected", name, err)
		}
	}

	a.Serve(uuid, "/nonexistent/oga.sock", 3)
	if !a.Served(uuid) || l.Agent(uuid) == nil {
		t.Fatal("not served after Serve")
	}
	st, ok := a.State(uuid)
	if !ok || !st.Present || st.APIVersion != 3 || st.Responsive {
		t.Errorf("state %+v (ok %v), want present, API 3 from the persisted version, not responsive", st, ok)
	}
	a.Remove(uuid)
	if a.Served(uuid) {
		t.Error("served after Remove")
	}
}

func TestQGAClassedErrors(t *testing.T) {
	if classed(nil) != nil {
		t.Error("nil error classed")
	}
	plain := errors.New("plain")
	if classed(plain) != plain {
		t.Error("an error without a class changed")
	}
	qe := &qga.Error{Class: qga.ErrorClass("Timeout"), Command: "guest-ping", Err: context.DeadlineExceeded}
	var c interface{ ErrorClass() string }
	err := classed(qe)
	if !errors.As(err, &c) || c.ErrorClass() != "Timeout" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("classed(%v) = %v: class or cause lost", qe, err)
	}
}
