package qga

// Requests from the command executor: one agent call at a time per domain, shared with polling.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"guestagent.io/operator/agentd/guest"
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
// sent), the per-domain lock and error classification. cmd is the request's command; also lists
// further commands it sends, gated the same way.
func (p *QemuGuestAgentPoller) request(ctx context.Context, uuid, cmd string, def time.Duration, f func(timeout time.Duration) error, also ...string) error {
	d, release, err := p.acquire(ctx, uuid, cmd)
	if err != nil {
		return err
	}
	defer release()
	p.mu.Lock()
	for _, c := range append([]string{cmd}, also...) {
		if d.caps != nil && !d.caps.Enabled(c) {
			p.mu.Unlock()
			return &Error{Class: ErrUnsupported, Command: c, Err: errors.New("not enabled in the agent's guest-info")}
		}
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

// FSFreeze freezes the given guest mountpoints (all when empty) and returns the freeze state the
// agent reports afterwards: FreezeThawed when there was nothing to freeze.
func (p *QemuGuestAgentPoller) FSFreeze(ctx context.Context, uuid string, mountpoints []string) (string, error) {
	cmd := CmdFSFreeze
	if len(mountpoints) > 0 {
		cmd = CmdFSFreezeList
	}
	state := FreezeFrozen
	err := p.request(ctx, uuid, cmd, p.cfg.RequestTimeout, func(to time.Duration) error {
		if err := p.cfg.API.FSFreeze(ctx, uuid, mountpoints, to); err != nil {
			return err
		}
		state = p.freezeOutcome(ctx, uuid)
		return nil
	})
	if err != nil {
		return "", err
	}
	p.setFreeze(uuid, state)
	return state, nil
}

// freezeOutcome is the freeze state a successful freeze left behind, as guest-fsfreeze-status
// reports it (still under the domain's agent lock, so nothing can thaw in between). A freeze with
// nothing to freeze (no freezable filesystem, or no listed mountpoint matched) succeeds and
// leaves qemu-ga thawed: recording Frozen would mark the guest's data stale (and commands refused)
// until the next poll. When the status cannot be read (the command is not offered, or the read
// failed), the successful freeze counts as Frozen, as before: the freeze did succeed, and the
// next poll corrects the state (a command the freeze disables answers, or guest-info says so).
func (p *QemuGuestAgentPoller) freezeOutcome(ctx context.Context, uuid string) string {
	p.mu.Lock()
	d := p.doms[uuid]
	offered := d != nil && (d.caps == nil || d.caps.Enabled(CmdFSFreezeState))
	name := ""
	if d != nil {
		name = d.name
	}
	p.mu.Unlock()
	if !offered {
		return FreezeFrozen
	}
	st, err := p.freezeStatus(ctx, uuid, p.timeout(ctx, p.cfg.CallTimeout))
	if err != nil {
		p.log.V(1).Info("Reading the freeze status after a freeze failed; recording Frozen", "domain", name, "domainUUID", uuid, "error", err.Error())
		return FreezeFrozen
	}
	if st == FreezeThawed {
		p.log.Info("Filesystem freeze froze nothing; the QEMU guest agent stays thawed", "domain", name, "domainUUID", uuid)
	}
	return st
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

// SetVCPUs leaves count of the guest's vCPUs online: it reads the guest's vCPUs
// (guest-get-vcpus), plans the change with PlanVCPUs, applies it (guest-set-vcpus) and reads the
// vCPUs again to confirm, all under one hold of the domain's agent lock. It returns the plan it
// carried out. A count the guest cannot reach fails as AgentError with PlanVCPUs's explanation
// and changes nothing.
func (p *QemuGuestAgentPoller) SetVCPUs(ctx context.Context, uuid string, count int) (VCPUPlan, error) {
	var plan VCPUPlan
	err := p.request(ctx, uuid, CmdSetVCPUs, p.cfg.RequestTimeout, func(to time.Duration) error {
		before, err := p.cfg.API.VCPUs(ctx, uuid, to)
		if err != nil {
			return err
		}
		if plan, err = PlanVCPUs(before, count); err != nil {
			return &Error{Class: ErrAgentError, Command: CmdSetVCPUs, Err: err}
		}
		if !plan.Empty() {
			ids, online := plan.Online, true
			if len(plan.Offline) > 0 {
				ids, online = plan.Offline, false
			}
			if err := p.cfg.API.SetVCPUs(ctx, uuid, ids, online, to); err != nil {
				return err
			}
		}
		after, err := p.cfg.API.VCPUs(ctx, uuid, to)
		if err != nil {
			return fmt.Errorf("reading the vCPUs back: %w", err)
		}
		got := TranslateVCPUs(after)
		p.setVCPUs(uuid, got)
		if got == nil || got.Online != count {
			n := 0
			if got != nil {
				n = got.Online
			}
			return &Error{Class: ErrAgentError, Command: CmdSetVCPUs, Err: fmt.Errorf("the guest reports %d vCPUs online afterwards, not %d", n, count)}
		}
		return nil
	}, CmdVCPUs)
	return plan, err
}

// setVCPUs records the vCPU figures a SetVCPUs request read back, so they show before the next
// poll.
func (p *QemuGuestAgentPoller) setVCPUs(uuid string, v *guest.VCPUs) {
	if v == nil {
		return
	}
	p.mu.Lock()
	d := p.doms[uuid]
	changed := d != nil && (d.info.VCPUs == nil || *d.info.VCPUs != *v)
	if changed {
		d.info.VCPUs = v
	}
	p.mu.Unlock()
	if changed {
		p.notify(uuid)
	}
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
