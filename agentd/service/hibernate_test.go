package service

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// fakeSave is a HostSave that records the saves.
type fakeSave struct {
	mu    sync.Mutex
	saves []string
	image bool
	err   error
}

func (f *fakeSave) ManagedSave(_ context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves = append(f.saves, uuid)
	if f.err != nil {
		return f.err
	}
	f.image = true
	return nil
}

func (f *fakeSave) HasManagedSaveImage(context.Context, string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.image, nil
}

// ManagedSave and HasManagedSaveImage go to libvirt's save; without one they fail clearly, and a
// domain not on this node is not saved.
func TestManagedSave(t *testing.T) {
	r := newRig(t, virt.StateRunning, up, up)
	ctx := context.Background()
	if err := r.svc.ManagedSave(ctx, testUUID); !errors.Is(err, ErrNoSave) {
		t.Errorf("without a save: %v", err)
	}
	if _, err := r.svc.HasManagedSaveImage(ctx, testUUID); !errors.Is(err, ErrNoSave) {
		t.Errorf("without a save: %v", err)
	}
	s := &fakeSave{}
	r.svc.opts.Save = s
	if err := r.svc.ManagedSave(ctx, "0e7e0000-0000-4000-8000-00000000ffff"); err == nil {
		t.Error("an unknown domain was saved")
	}
	if err := r.svc.ManagedSave(ctx, testUUID); err != nil {
		t.Fatal(err)
	}
	if has, err := r.svc.HasManagedSaveImage(ctx, testUUID); err != nil || !has {
		t.Errorf("image %v, %v", has, err)
	}
	if !slices.Equal(s.saves, []string{testUUID}) {
		t.Errorf("saves %v", s.saves)
	}
}

// WaitSessionLocked returns once the oVirt agent reports the session Locked (or LoggedOff),
// woken by the agent's change, and gives up with ctx.
func TestWaitSessionLocked(t *testing.T) {
	r := newRig(t, virt.StateRunning, absent, up)
	st := r.oga // the agent reports an active session
	st.Set(testUUID, servicefake.OGAState(up), &guest.Info{Session: &guest.Session{State: guest.SessionActive}})

	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		st  guest.SessionState
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := r.svc.WaitSessionLocked(ctx, testUUID)
		done <- result{s, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("returned before the lock: %+v", res)
	case <-time.After(50 * time.Millisecond): // a negative check: nothing may arrive
	}
	st.Set(testUUID, servicefake.OGAState(up), &guest.Info{Session: &guest.Session{State: guest.SessionLocked}})
	res := <-done
	if res.err != nil || res.st != guest.SessionLocked {
		t.Errorf("got %+v, want Locked", res)
	}
	cancel()

	// Already logged off: at once. Never locked: ctx's error with the last state.
	st.Set(testUUID, servicefake.OGAState(up), &guest.Info{Session: &guest.Session{State: guest.SessionLoggedOff}})
	if s, err := r.svc.WaitSessionLocked(context.Background(), testUUID); err != nil || s != guest.SessionLoggedOff {
		t.Errorf("logged off: %v %v", s, err)
	}
	st.Set(testUUID, servicefake.OGAState(up), &guest.Info{Session: &guest.Session{State: guest.SessionActive}})
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if s, err := r.svc.WaitSessionLocked(short, testUUID); !errors.Is(err, context.Canceled) || s != guest.SessionActive {
		t.Errorf("never locked: %v %v", s, err)
	}
}

// Suspend goes to QGA with its mode and to the oVirt agent as hibernate mem/disk; the oVirt agent
// has no hybrid. A PMSUSPENDED event reaches the power watches.
func TestSuspendRouting(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		mode  gav1.SuspendMode
		agent gav1.AgentSelector
		want  []string
		fail  bool
	}{
		{gav1.SuspendRam, gav1.AgentSelectQemu, []string{"qga suspend-Ram"}, false},
		{gav1.SuspendHybrid, gav1.AgentSelectQemu, []string{"qga suspend-Hybrid"}, false},
		{gav1.SuspendDisk, gav1.AgentSelectQemu, []string{"qga suspend-Disk"}, false},
		{gav1.SuspendRam, gav1.AgentSelectOvirt, []string{"oga hibernate:mem"}, false},
		{gav1.SuspendDisk, gav1.AgentSelectOvirt, []string{"oga hibernate:disk"}, false},
		{gav1.SuspendHybrid, gav1.AgentSelectOvirt, nil, true},
	} {
		r := newRig(t, virt.StateRunning, up, up)
		spec := gav1.GuestAgentCommandSpec{Action: gav1.ActionSuspend, Agent: c.agent, Suspend: &gav1.SuspendParams{Mode: c.mode}}
		_, err := r.svc.Execute(ctx, testUUID, Request{Spec: spec})
		if (err != nil) != c.fail {
			t.Errorf("%s via %s: %v", c.mode, c.agent, err)
		}
		if got := r.calls(); !slices.Equal(got, c.want) {
			t.Errorf("%s via %s: calls %v, want %v", c.mode, c.agent, got, c.want)
		}
	}

	r := newRig(t, virt.StateRunning, up, absent)
	w, _ := r.svc.WatchPower(testUUID)
	defer w.Close()
	d, _ := r.svc.View(testUUID)
	s := d.Domain
	s.State = virt.StatePMSuspended
	r.svc.handle(virt.Event{Type: virt.EventDomainUpdated, Domain: s, Lifecycle: virt.LifecyclePMSuspended, Reason: "libvirt PMSUSPENDED/0"})
	if pc := <-w.C; pc.Event != PowerSuspended || pc.State != virt.StatePMSuspended {
		t.Errorf("power change %+v, want PowerSuspended", pc)
	}
}
