package qga

import (
	"context"
	"testing"
	"time"
)

// Every method of Route reaches the DomainAPI chosen for the call's domain.
func TestRouteChoosesPerDomain(t *testing.T) {
	a := NewSocketAPI(func(string) (string, bool) { return "", false })
	b := NewSocketAPI(func(uuid string) (string, bool) { return "/nonexistent/" + uuid, true })
	var asked []string
	r := Route(func(uuid string) DomainAPI {
		asked = append(asked, uuid)
		if uuid == "a" {
			return a
		}
		return b
	})
	ctx := context.Background()
	const to = 100 * time.Millisecond
	// a has no socket for anything: DomainNotRunning; b dials a missing path: NotConnected
	if _, err := r.Raw(ctx, "a", CmdPing, to); ClassOf(err) != ErrDomainNotRunning {
		t.Errorf("a: %v", err)
	}
	calls := []func(uuid string) error{
		func(u string) error { _, err := r.Raw(ctx, u, CmdPing, to); return err },
		func(u string) error { _, err := r.GuestInfo(ctx, u, InfoOS, to); return err },
		func(u string) error { _, err := r.Interfaces(ctx, u, to); return err },
		func(u string) error { _, err := r.VCPUs(ctx, u, to); return err },
		func(u string) error { return r.Shutdown(ctx, u, ShutdownPowerdown, to) },
		func(u string) error { return r.Reboot(ctx, u, to) },
		func(u string) error { return r.FSFreeze(ctx, u, nil, to) },
		func(u string) error { return r.FSThaw(ctx, u, nil, to) },
		func(u string) error { return r.SetTime(ctx, u, time.Now(), to) },
	}
	for i, c := range calls {
		if err := c("b"); ClassOf(err) != ErrNotConnected {
			t.Errorf("call %d on b: %v", i, err)
		}
	}
	if len(asked) != 1+len(calls) {
		t.Errorf("route asked %d times", len(asked))
	}
}
