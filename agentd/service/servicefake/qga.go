// Package servicefake provides an in-memory QemuAgent for tests of GuestAgentService and the
// layers above it. libvirt's test driver cannot stand in for the QEMU guest agent (it has no
// GetGuestInfo, no agent commands and no agent events), so tests that need QGA data or requests
// without a real guest use this.
package servicefake

import (
	"context"
	"fmt"
	"sync"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// QGA is an in-memory service.QemuAgent: tests set data and states, and read the calls it
// received. FailWith makes every request fail; a non-nil Hold makes every request wait until it
// is closed, whatever its context says (as libvirt's blocking agent calls do).
type QGA struct {
	Hold     chan struct{}
	mu       sync.Mutex
	tracked  map[string]virt.Domain
	info     map[string]*guest.Info
	stats    map[string]*guest.Stats
	state    map[string]guest.QGAState
	calls    []string
	subs     []func(string)
	FailWith error
	// NothingToFreeze makes a freeze succeed without freezing anything, as qemu-ga does for a
	// guest without freezable filesystems.
	NothingToFreeze bool
}

// NewQGA returns an empty fake.
func NewQGA() *QGA {
	return &QGA{tracked: map[string]virt.Domain{}, info: map[string]*guest.Info{}, stats: map[string]*guest.Stats{}, state: map[string]guest.QGAState{}}
}

// Subscribe implements service.QemuAgent: f is called after every Set.
func (f *QGA) Subscribe(fn func(uuid string)) {
	f.mu.Lock()
	f.subs = append(f.subs, fn)
	f.mu.Unlock()
}

// Run implements service.QemuAgent.
func (f *QGA) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// HandleEvent implements service.QemuAgent: the channel state follows the domain snapshot, a
// removed domain loses its data.
func (f *QGA) HandleEvent(ev virt.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := ev.Domain
	if ev.Type == virt.EventDeviceChanged {
		f.calls = append(f.calls, "device "+d.UUID)
		return
	}
	if ev.Type == virt.EventDomainRemoved {
		delete(f.tracked, d.UUID)
		delete(f.info, d.UUID)
		delete(f.stats, d.UUID)
		delete(f.state, d.UUID)
		return
	}
	f.tracked[d.UUID] = d
	st := f.state[d.UUID]
	st.Channel = d.QGAChannel
	f.state[d.UUID] = st
}

// Info implements service.QemuAgent.
func (f *QGA) Info(uuid string) *guest.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info[uuid].DeepCopy()
}

// Stats implements service.QemuAgent.
func (f *QGA) Stats(uuid string) *guest.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats[uuid].DeepCopy()
}

// SetStats replaces a domain's metrics-only figures; like the poller, it notifies nobody.
func (f *QGA) SetStats(uuid string, s *guest.Stats) {
	f.mu.Lock()
	f.stats[uuid] = s
	f.mu.Unlock()
}

// State implements service.QemuAgent.
func (f *QGA) State(uuid string) guest.QGAState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[uuid]
}

// Set replaces a domain's data and state and notifies the subscribers.
func (f *QGA) Set(uuid string, info *guest.Info, st guest.QGAState) {
	f.mu.Lock()
	f.info[uuid] = info
	f.state[uuid] = st
	subs := f.subs
	f.mu.Unlock()
	for _, fn := range subs {
		fn(uuid)
	}
}

func (f *QGA) record(call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	hold, err := f.Hold, f.FailWith
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return err
}

// Calls returns the requests received, e.g. "shutdown <uuid>", and the device hotplug events
// handed on ("device <uuid>").
func (f *QGA) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Shutdown records "shutdown" or "halt".
func (f *QGA) Shutdown(_ context.Context, uuid string, halt bool) error {
	if halt {
		return f.record("halt " + uuid)
	}
	return f.record("shutdown " + uuid)
}

// Reboot records "reboot".
func (f *QGA) Reboot(_ context.Context, uuid string) error { return f.record("reboot " + uuid) }

// FreezeFilesystems records "freeze"; frozen is false with NothingToFreeze.
func (f *QGA) FreezeFilesystems(_ context.Context, uuid string, _ []string) (bool, error) {
	if err := f.record("freeze " + uuid); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.NothingToFreeze, nil
}

// ThawFilesystems records "thaw".
func (f *QGA) ThawFilesystems(_ context.Context, uuid string) error {
	return f.record("thaw " + uuid)
}

// SetTime records "settime".
func (f *QGA) SetTime(_ context.Context, uuid string) error { return f.record("settime " + uuid) }

// Suspend records "suspend-<mode>", e.g. "suspend-Ram".
func (f *QGA) Suspend(_ context.Context, uuid string, mode gav1.SuspendMode) error {
	return f.record("suspend-" + string(mode) + " " + uuid)
}

// Ping records "ping".
func (f *QGA) Ping(_ context.Context, uuid string) error { return f.record("ping " + uuid) }

// SetVCPUs records "setvcpus <count>" and answers that count vCPUs are online.
func (f *QGA) SetVCPUs(_ context.Context, uuid string, count int) (string, error) {
	if err := f.record(fmt.Sprintf("setvcpus %d %s", count, uuid)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d of the guest's vCPUs online", count), nil
}
