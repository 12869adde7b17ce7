package virt

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"guestagent.io/operator/agentd/guest"
)

// Fake is an in-memory Watcher for tests of the layers above virt. Events are injected with
// the methods below and delivered to the Run handler in order, on Run's goroutine.
type Fake struct {
	mu        sync.Mutex
	domains   map[string]Domain
	connected atomic.Bool
	synced    atomic.Bool
	ch        chan Event
	started   atomic.Bool
}

// NewFake returns a Fake that reports itself connected and knows the given domains (they are
// delivered as EventDomainAdded/LifecycleDiscovered when Run starts).
func NewFake(initial ...Domain) *Fake {
	f := &Fake{domains: map[string]Domain{}, ch: make(chan Event, 1024)}
	f.connected.Store(true)
	for _, d := range initial {
		f.domains[d.UUID] = d
	}
	return f
}

var _ Watcher = (*Fake)(nil)

// Run implements Watcher.
func (f *Fake) Run(ctx context.Context, h Handler) error {
	if !f.started.CompareAndSwap(false, true) {
		return errors.New("virt: Fake.Run called twice")
	}
	for _, d := range f.Domains() {
		h(Event{Type: EventDomainAdded, Domain: d, Lifecycle: LifecycleDiscovered, Reason: "fake listing"})
	}
	f.synced.Store(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-f.ch:
			h(ev)
		}
	}
}

// Connected implements Watcher.
func (f *Fake) Connected() bool { return f.connected.Load() }

// Synced implements Watcher: true once Run delivered the initial domains.
func (f *Fake) Synced() bool { return f.synced.Load() && f.connected.Load() }

// Domains implements Watcher.
func (f *Fake) Domains() []Domain {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Domain, 0, len(f.domains))
	for _, d := range f.domains {
		out = append(out, d)
	}
	return out
}

// Domain implements Watcher.
func (f *Fake) Domain(uuid string) (Domain, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.domains[uuid]
	return d, ok
}

// Set adds or replaces a domain and emits Added (new) or Updated with the given lifecycle.
func (f *Fake) Set(d Domain, lc Lifecycle) {
	f.mu.Lock()
	_, known := f.domains[d.UUID]
	f.domains[d.UUID] = d
	f.mu.Unlock()
	t := EventDomainUpdated
	if !known {
		t = EventDomainAdded
	}
	f.ch <- Event{Type: t, Domain: d, Lifecycle: lc, Reason: "fake"}
}

// SetChannel changes a domain's QGA channel state and emits EventAgentChannel.
func (f *Fake) SetChannel(uuid string, st guest.ChannelState) {
	f.mu.Lock()
	d, ok := f.domains[uuid]
	if ok {
		d.QGAChannel = st
		f.domains[uuid] = d
	}
	f.mu.Unlock()
	if ok {
		f.ch <- Event{Type: EventAgentChannel, Domain: d, Reason: "fake"}
	}
}

// Hotplug emits EventDeviceChanged (LifecycleDeviceAdded or LifecycleDeviceRemoved) for a known
// domain's device alias.
func (f *Fake) Hotplug(uuid, alias string, lc Lifecycle) {
	f.mu.Lock()
	d, ok := f.domains[uuid]
	f.mu.Unlock()
	if ok {
		f.ch <- Event{Type: EventDeviceChanged, Domain: d, Lifecycle: lc, Device: alias, Reason: "fake"}
	}
}

// Remove forgets a domain and emits EventDomainRemoved with the given lifecycle.
func (f *Fake) Remove(uuid string, lc Lifecycle) {
	f.mu.Lock()
	d, ok := f.domains[uuid]
	delete(f.domains, uuid)
	f.mu.Unlock()
	if ok {
		f.ch <- Event{Type: EventDomainRemoved, Domain: d, Lifecycle: lc, Reason: "fake"}
	}
}

// SetConnected flips the health bit and emits ConnectionLost/ConnectionRestored.
func (f *Fake) SetConnected(up bool) {
	if f.connected.Swap(up) == up {
		return
	}
	if up {
		f.ch <- Event{Type: EventConnectionRestored, Reason: "fake"}
	} else {
		f.ch <- Event{Type: EventConnectionLost, Reason: "fake"}
	}
}
