package service

import (
	"context"
	"fmt"
	"sync"
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
