package qga

// Requests from the command executor: one agent call at a time per domain, shared with polling.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// acquire takes the domain's agent lock, waiting for an in-flight poll at most until ctx ends
// or the request timeout.
func (p *QemuGuestAgentPoller) acquire(ctx context.Context, uuid, cmd string) (*domain, func(), error) {
	p.mu.Lock()
	d := p.doms[uuid]
	if d == nil {
		p.mu.Unlock()
		return nil, nil, &Error{Class: ErrDomainNotRunning, Command: cmd, Err: fmt.Errorf("domain %s unknown to the QGA poller", uuid)}
	}
	lock := d.lock
	p.mu.Unlock()
	wait := p.cfg.RequestTimeout
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case lock <- struct{}{}:
		return d, func() { <-lock }, nil
	case <-ctx.Done():
		return nil, nil, &Error{Class: ErrTimeout, Command: cmd, Err: fmt.Errorf("waiting for the agent: %w", ctx.Err())}
	case <-t.C:
		return nil, nil, &Error{Class: ErrTimeout, Command: cmd, Err: errors.New("agent busy with another call")}
	}
}

// timeout is the agent timeout of one request: def (the call or request timeout), shortened to
// what is left of ctx. A long command deadline must not make a hung agent hold the request (and
// the domain's agent lock) for the whole deadline: a ping to a hung agent fails after CallTimeout.
func (p *QemuGuestAgentPoller) timeout(ctx context.Context, def time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		r := time.Until(dl)
		if r <= 0 {
			return time.Millisecond
		}
		return min(r, def)
	}
	return def
}

// request runs one request with gating (a command the agent is known not to offer is never
// sent), the per-domain lock and error classification.
func (p *QemuGuestAgentPoller) request(ctx context.Context, uuid, cmd string, def time.Duration, f func(timeout time.Duration) error) error {
	d, release, err := p.acquire(ctx, uuid, cmd)
	if err != nil {
		return err
	}
	defer release()
	p.mu.Lock()
	if d.caps != nil && !d.caps.Enabled(cmd) {
		p.mu.Unlock()
		return &Error{Class: ErrUnsupported, Command: cmd, Err: errors.New("not enabled in the agent's guest-info")}
	}
	p.mu.Unlock()
	if err := f(p.timeout(ctx, def)); err != nil {
		if errors.As(err, new(*Error)) {
			return err
		}
		return &Error{Class: ClassOf(err), Command: cmd, Err: err}
	}
	return nil
}

// Shutdown asks the guest to shut down through the agent (powerdown uses libvirt's
// ShutdownFlags(GUEST_AGENT)).
func (p *QemuGuestAgentPoller) Shutdown(ctx context.Context, uuid string, mode ShutdownMode) error {
	if mode == "" {
		mode = ShutdownPowerdown
	}
	if mode != ShutdownPowerdown && mode != ShutdownHalt {
		return &Error{Class: ErrUnsupported, Command: CmdShutdown, Err: fmt.Errorf("unknown shutdown mode %q", mode)}
	}
	return p.request(ctx, uuid, CmdShutdown, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.Shutdown(ctx, uuid, mode, to)
	})
}

// Reboot asks the guest to reboot through the agent (libvirt Reboot(GUEST_AGENT)).
func (p *QemuGuestAgentPoller) Reboot(ctx context.Context, uuid string) error {
	return p.request(ctx, uuid, CmdShutdown, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.Reboot(ctx, uuid, to)
	})
}

// Suspend asks the guest to suspend itself through the agent (libvirt PMSuspendForDuration):
// cmd is CmdSuspendRAM, CmdSuspendHybrid or CmdSuspendDisk. A command the agent does not
// offer (guest-info) is never sent.
func (p *QemuGuestAgentPoller) Suspend(ctx context.Context, uuid, cmd string) error {
	switch cmd {
	case CmdSuspendRAM, CmdSuspendHybrid, CmdSuspendDisk:
	default:
		return &Error{Class: ErrUnsupported, Command: cmd, Err: fmt.Errorf("unknown suspend command %q", cmd)}
	}
	return p.request(ctx, uuid, cmd, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.Suspend(ctx, uuid, cmd, to)
	})
}

// FSFreeze freezes the given guest mountpoints (all when empty).
func (p *QemuGuestAgentPoller) FSFreeze(ctx context.Context, uuid string, mountpoints []string) error {
	cmd := CmdFSFreeze
	if len(mountpoints) > 0 {
		cmd = CmdFSFreezeList
	}
	err := p.request(ctx, uuid, cmd, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.FSFreeze(ctx, uuid, mountpoints, to)
	})
	if err == nil {
		p.setFreeze(uuid, FreezeFrozen)
	}
	return err
}

// setFreeze records the freeze state a successful freeze or thaw request left behind.
func (p *QemuGuestAgentPoller) setFreeze(uuid, state string) {
	p.mu.Lock()
	d := p.doms[uuid]
	changed := d != nil && d.st.FSFreeze != state
	if changed {
		d.st.FSFreeze = state
	}
	p.mu.Unlock()
	if changed {
		p.notify(uuid)
	}
}

// FSThaw thaws the guest filesystems.
func (p *QemuGuestAgentPoller) FSThaw(ctx context.Context, uuid string, mountpoints []string) error {
	err := p.request(ctx, uuid, CmdFSThaw, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.FSThaw(ctx, uuid, mountpoints, to)
	})
	if err == nil {
		p.setFreeze(uuid, FreezeThawed)
	}
	return err
}

// SetTime sets the guest clock to the host's current time.
func (p *QemuGuestAgentPoller) SetTime(ctx context.Context, uuid string) error {
	return p.request(ctx, uuid, CmdSetTime, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.SetTime(ctx, uuid, time.Now(), to)
	})
}

// Ping checks that the agent answers (raw guest-ping, CallTimeout unless ctx says otherwise).
// The outcome updates State.Responsive.
func (p *QemuGuestAgentPoller) Ping(ctx context.Context, uuid string) error {
	reached := false
	err := p.request(ctx, uuid, CmdPing, p.cfg.CallTimeout, func(to time.Duration) error {
		reached = true
		_, err := p.cfg.API.Raw(ctx, uuid, CmdPing, to)
		return err
	})
	if !reached {
		return err
	}
	p.mu.Lock()
	d := p.doms[uuid]
	changed := false
	if d != nil {
		before := d.st.Responsive
		d.st.Responsive = err == nil
		if err == nil {
			d.st.LastSuccess = p.cfg.Clock.Now()
		}
		changed = before != d.st.Responsive
	}
	p.mu.Unlock()
	if changed {
		p.notify(uuid)
	}
	return err
}
