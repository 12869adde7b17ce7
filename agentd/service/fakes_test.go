package service

import (
	"context"
	"fmt"
	"sync"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// fakePower is an ACPI power button that records presses.
type fakePower struct {
	mu       sync.Mutex
	calls    []string
	failWith error
}

func (p *fakePower) press(what, uuid string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, what+" "+uuid)
	return p.failWith
}

func (p *fakePower) ACPIShutdown(_ context.Context, uuid string) error {
	return p.press("acpi-shutdown", uuid)
}
func (p *fakePower) ACPIReboot(_ context.Context, uuid string) error {
	return p.press("acpi-reboot", uuid)
}

func (p *fakePower) Destroy(_ context.Context, uuid string) error {
	return p.press("destroy", uuid)
}
func (p *fakePower) Reset(_ context.Context, uuid string) error {
	return p.press("reset", uuid)
}

func (p *fakePower) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// fakeEvents records the lifecycle hooks sent.
type fakeEvents struct {
	mu   sync.Mutex
	sent []string
}

func (e *fakeEvents) add(s string) error {
	e.mu.Lock()
	e.sent = append(e.sent, s)
	e.mu.Unlock()
	return nil
}

func (e *fakeEvents) AfterMigration(_ context.Context, uuid string, failed bool) error {
	return e.add(fmt.Sprintf("after_migration %s failed=%v", uuid, failed))
}

func (e *fakeEvents) AfterHibernation(_ context.Context, uuid string, failed bool) error {
	return e.add(fmt.Sprintf("after_hibernation %s failed=%v", uuid, failed))
}

func (e *fakeEvents) Sent() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.sent...)
}

// fakeVersions returns persisted oVirt API versions, or an error.
type fakeVersions struct {
	mu       sync.Mutex
	versions map[string]int
	err      error
	asked    []string
}

func (v *fakeVersions) OvirtAPIVersion(_ context.Context, uuid string) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asked = append(v.asked, uuid)
	return v.versions[uuid], v.err
}

// fakeMemory is libvirt's memory statistics source: tests set each domain's figures.
type fakeMemory struct {
	mu     sync.Mutex
	mem    map[string]*guest.Memory
	fresh  map[string]bool
	subs   []func(string)
	events []virt.Event
}

func newFakeMemory() *fakeMemory {
	return &fakeMemory{mem: map[string]*guest.Memory{}, fresh: map[string]bool{}}
}

func (f *fakeMemory) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (f *fakeMemory) Subscribe(fn func(string)) {
	f.mu.Lock()
	f.subs = append(f.subs, fn)
	f.mu.Unlock()
}

func (f *fakeMemory) HandleEvent(ev virt.Event) {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
}

func (f *fakeMemory) Memory(uuid string) (*guest.Memory, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.mem[uuid]
	if m == nil {
		return nil, false
	}
	c := *m
	return &c, f.fresh[uuid]
}

// Set stores a domain's figures (nil: none) and notifies the subscribers.
func (f *fakeMemory) Set(uuid string, m *guest.Memory, fresh bool) {
	f.mu.Lock()
	f.mem[uuid], f.fresh[uuid] = m, fresh
	subs := append([]func(string){}, f.subs...)
	f.mu.Unlock()
	for _, fn := range subs {
		fn(uuid)
	}
}

func (f *fakeMemory) sawRemoval(uuid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range f.events {
		if ev.Type == virt.EventDomainRemoved && ev.Domain.UUID == uuid {
			return true
		}
	}
	return false
}
