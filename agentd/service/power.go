package service

import (
	"context"
	"errors"
	"fmt"

	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// PowerEvent is a change of a domain's power state that a power policy waits for, as libvirt
// reports it.
type PowerEvent int

// Power events.
const (
	// PowerStopped: the domain is no longer running (libvirt STOPPED/SHUTDOWN, DESTROYED, FAILED;
	// a transient domain that stopped and vanished). Detail says which.
	PowerStopped PowerEvent = iota + 1
	// PowerRebooted: libvirt's REBOOT event (QEMU reset the guest: a guest-initiated reboot or
	// virDomainReset).
	PowerRebooted
	// PowerGone: the domain left the node by migration, or crashed.
	PowerGone
	// PowerSuspended: libvirt's PMSUSPENDED event (the guest suspended itself to RAM or disk).
	PowerSuspended
)

// PowerChange is one PowerEvent with libvirt's detail.
type PowerChange struct {
	Event  PowerEvent
	State  virt.State
	Detail string
}

// PowerWatch delivers a domain's power changes from the moment it was created. Close it when
// done.
type PowerWatch struct {
	// C receives the changes (buffered; changes beyond the buffer are dropped, the first ones
	// are the ones that matter).
	C <-chan PowerChange
	// State is the domain's run state when the watch was created.
	State virt.State
	close func()
}

// Close stops the watch.
func (w *PowerWatch) Close() { w.close() }

// WatchPower starts delivering a domain's power changes; ok is false for a domain not on this
// node. Create the watch before sending a step, so no change is missed.
func (s *GuestAgentService) WatchPower(uuid string) (*PowerWatch, bool) {
	s.mu.Lock()
	d, ok := s.domains[uuid]
	away := s.away[uuid]
	s.mu.Unlock()
	if !ok || away {
		return nil, false
	}
	ch := make(chan PowerChange, 16)
	return &PowerWatch{C: ch, State: d.State, close: s.power.add(uuid, ch)}, true
}

// notifyPower passes a libvirt event on to the domain's power watches. It runs on the watcher's
// goroutine, before the event is applied elsewhere.
func (s *GuestAgentService) notifyPower(ev virt.Event) {
	var pc PowerChange
	d := ev.Domain
	switch {
	case ev.Type == virt.EventDomainRemoved && ev.Lifecycle == virt.LifecycleMigratedOut,
		ev.Lifecycle == virt.LifecycleMigratedOut:
		pc = PowerChange{Event: PowerGone, State: d.State, Detail: "the domain migrated to another node"}
	case ev.Lifecycle == virt.LifecycleCrashed:
		pc = PowerChange{Event: PowerGone, State: d.State, Detail: "the domain crashed (" + ev.Reason + ")"}
	case ev.Type == virt.EventDomainRemoved || ev.Lifecycle == virt.LifecycleStopped ||
		((ev.Type == virt.EventDomainUpdated || ev.Type == virt.EventDomainAdded) && d.State == virt.StateShutOff):
		pc = PowerChange{Event: PowerStopped, State: virt.StateShutOff, Detail: ev.Reason}
	case ev.Lifecycle == virt.LifecycleRebooted:
		pc = PowerChange{Event: PowerRebooted, State: d.State, Detail: ev.Reason}
	case ev.Lifecycle == virt.LifecyclePMSuspended:
		pc = PowerChange{Event: PowerSuspended, State: d.State, Detail: ev.Reason}
	default:
		return
	}
	s.power.send(d.UUID, pc)
}

// ErrNoPowerButton is returned by HostPower when agentd has no libvirt power control.
var ErrNoPowerButton = errors.New("no host power control (libvirt) is configured")

// HostPower takes a host-side step of a power policy: ACPI (the power button; for Reboot
// libvirt's ACPI reboot) or Destroy (Shutdown: destroy, gracefully first; Reboot: reset).
// Requests to one domain are serialised with the agents' requests.
func (s *GuestAgentService) HostPower(ctx context.Context, uuid string, action gav1.Action, m gav1.PowerMethod) error {
	if s.opts.PowerButton == nil {
		return ErrNoPowerButton
	}
	if _, ok := s.View(uuid); !ok {
		return execErr(gav1.ReasonDomainNotFound, "domain %s is not on this node", uuid)
	}
	pb := s.opts.PowerButton // no lock: a host step must not wait for an agent call still running
	switch {
	case m == gav1.PowerACPI && action == gav1.ActionShutdown:
		return pb.ACPIShutdown(ctx, uuid)
	case m == gav1.PowerACPI && action == gav1.ActionReboot:
		return pb.ACPIReboot(ctx, uuid)
	case m == gav1.PowerDestroy && action == gav1.ActionShutdown:
		return pb.Destroy(ctx, uuid)
	case m == gav1.PowerDestroy && action == gav1.ActionReboot:
		return pb.Reset(ctx, uuid)
	}
	return fmt.Errorf("%w: %s of %s", errUnsupportedAction, m, action)
}

// NewPowerWatch returns a PowerWatch over c, for fakes of the service; close may be nil.
func NewPowerWatch(c <-chan PowerChange, state virt.State, close func()) *PowerWatch {
	if close == nil {
		close = func() {}
	}
	return &PowerWatch{C: c, State: state, close: close}
}
