package service

import (
	"context"
	"errors"
	"slices"
	"testing"

	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// A power watch sees libvirt's stop, reboot, crash and migration of its domain, and only of it.
func TestWatchPower(t *testing.T) {
	r := newRig(t, virt.StateRunning, up, absent)
	if _, ok := r.svc.WatchPower("0e7e0000-0000-4000-8000-00000000ffff"); ok {
		t.Fatal("a watch on an unknown domain")
	}
	w, ok := r.svc.WatchPower(testUUID)
	if !ok || w.State != virt.StateRunning {
		t.Fatalf("watch %v %v", ok, w)
	}
	d, _ := r.svc.View(testUUID)
	other := d.Domain
	other.UUID = "0e7e0000-0000-4000-8000-000000000002"
	r.svc.handle(virt.Event{Type: virt.EventDomainAdded, Domain: other, Lifecycle: virt.LifecycleStopped})
	r.svc.handle(virt.Event{Type: virt.EventDomainUpdated, Domain: d.Domain, Lifecycle: virt.LifecycleResumed})
	r.svc.handle(virt.Event{Type: virt.EventDomainUpdated, Domain: d.Domain, Lifecycle: virt.LifecycleRebooted, Reason: "libvirt REBOOT"})
	off := d.Domain
	off.State = virt.StateShutOff
	r.svc.handle(virt.Event{Type: virt.EventDomainUpdated, Domain: off, Lifecycle: virt.LifecycleStopped, Reason: "libvirt STOPPED/SHUTDOWN"})
	r.svc.handle(virt.Event{Type: virt.EventDomainUpdated, Domain: off, Lifecycle: virt.LifecycleCrashed})
	var got []PowerEvent
	for len(w.C) > 0 {
		got = append(got, (<-w.C).Event)
	}
	if want := []PowerEvent{PowerRebooted, PowerStopped, PowerGone}; !slices.Equal(got, want) {
		t.Errorf("power events %v, want %v", got, want)
	}
	w.Close()
	r.svc.handle(virt.Event{Type: virt.EventDomainRemoved, Domain: off, Lifecycle: virt.LifecycleStopped})
	if len(w.C) != 0 {
		t.Error("a closed watch still receives")
	}
}

// HostPower maps ACPI and Destroy of each power action to libvirt's calls.
func TestHostPower(t *testing.T) {
	r := newRig(t, virt.StateRunning, absent, absent)
	ctx := context.Background()
	for _, c := range []struct {
		a gav1.Action
		m gav1.PowerMethod
	}{{gav1.ActionShutdown, gav1.PowerACPI}, {gav1.ActionReboot, gav1.PowerACPI}, {gav1.ActionShutdown, gav1.PowerDestroy}, {gav1.ActionReboot, gav1.PowerDestroy}} {
		if err := r.svc.HostPower(ctx, testUUID, c.a, c.m); err != nil {
			t.Fatalf("%s %s: %v", c.m, c.a, err)
		}
	}
	if err := r.svc.HostPower(ctx, testUUID, gav1.ActionShutdown, gav1.PowerQemu); err == nil {
		t.Error("an agent method taken as a host step")
	}
	if got, want := r.calls(), []string{"acpi-shutdown", "acpi-reboot", "destroy", "reset"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	r.svc.opts.PowerButton = nil
	if err := r.svc.HostPower(ctx, testUUID, gav1.ActionShutdown, gav1.PowerACPI); !errors.Is(err, ErrNoPowerButton) {
		t.Errorf("without libvirt power control: %v", err)
	}
}

// ExecError.NotSent tells a skipped agent (nothing sent) from one that was asked and failed.
func TestExecuteNotSent(t *testing.T) {
	spec := gav1.GuestAgentCommandSpec{Action: gav1.ActionShutdown, Agent: gav1.AgentSelectQemu}
	var ee *ExecError
	_, err := newRig(t, virt.StateRunning, down, absent).svc.Execute(context.Background(), testUUID, Request{Spec: spec})
	if !errors.As(err, &ee) || !ee.NotSent {
		t.Errorf("agent down: %v, want NotSent", err)
	}
	_, err = newRig(t, virt.StateRunning, failing, absent).svc.Execute(context.Background(), testUUID, Request{Spec: spec})
	if !errors.As(err, &ee) || ee.NotSent {
		t.Errorf("agent failing: %v, want sent", err)
	}
}
