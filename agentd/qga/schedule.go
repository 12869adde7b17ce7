package qga

// Scheduling: which domains run on a tick, and which groups each run polls.

import (
	"slices"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

type task int

const (
	tCaps task = iota
	tUsers
	tOS
	tTimezone
	tHostname
	tNetwork
	tDevices
	tCPUs
	tFS
	tDisks
	// metrics-only tasks (statsTask): their results go to the domain's guest.Stats, never to
	// its Info or State
	tLoad
	tCPUStats
	tDiskStats
	numTasks
)

var taskCmd = [numTasks]string{CmdInfo, CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices, CmdVCPUs, CmdFSInfo, CmdDisks,
	CmdLoad, CmdCPUStats, CmdDiskStats}

// statsTask reports whether t is a metrics-only task.
func statsTask(t task) bool { return t >= tLoad && t <= tDiskStats }

// HotplugRefreshDelay is how long after a device was hot(un)plugged the domain's filesystems and
// disk mappings are refreshed once: the guest needs a moment to see the device.
const HotplugRefreshDelay = 10 * time.Second

func (p *QemuGuestAgentPoller) period(t task) time.Duration {
	switch t {
	case tCaps:
		return p.cfg.Periods.Caps
	case tUsers:
		return p.cfg.Periods.Users
	case tCPUs:
		return p.cfg.Periods.CPUs
	case tFS, tDisks:
		return p.cfg.Periods.Disks
	case tLoad, tCPUStats, tDiskStats:
		return p.cfg.Periods.Stats
	}
	return p.cfg.Periods.Sys
}

// HandleEvent feeds a virt event to the poller (optional when Config.Domains is set, but it
// makes reactions immediate: a connected channel or a (re)started domain is polled at once with
// capabilities re-detected).
func (p *QemuGuestAgentPoller) HandleEvent(ev virt.Event) {
	switch ev.Type {
	case virt.EventDomainAdded, virt.EventDomainUpdated, virt.EventAgentChannel:
	case virt.EventDeviceChanged:
		p.mu.Lock()
		if d := p.doms[ev.Domain.UUID]; d != nil && !d.removed {
			// picked up by the first tick at or after the due time (planLocked)
			d.hotplugDue = p.cfg.Clock.Now().Add(HotplugRefreshDelay)
			p.log.V(1).Info("Device hot(un)plugged; filesystems and disks refresh scheduled", "domain", d.name,
				"domainUUID", d.uuid, "event", ev.Lifecycle.String(), "due", d.hotplugDue)
		}
		p.mu.Unlock()
		return
	case virt.EventDomainRemoved:
		p.mu.Lock()
		if d := p.doms[ev.Domain.UUID]; d != nil {
			d.removed = true
		}
		p.mu.Unlock()
		return
	default:
		return
	}
	now := p.cfg.Clock.Now()
	p.mu.Lock()
	d, kick := p.upsertLocked(ev.Domain, now)
	switch ev.Lifecycle {
	case virt.LifecycleStarted, virt.LifecycleRestored, virt.LifecycleMigratedIn, virt.LifecycleRebooted,
		virt.LifecycleFromSnapshot, virt.LifecycleWokeUp:
		p.resetAgentLocked(d, now)
		kick = true
	}
	changed := p.syncChannelStateLocked(d)
	p.mu.Unlock()
	if changed {
		p.notify(ev.Domain.UUID)
	}
	if kick {
		p.enqueue(ev.Domain.UUID, now)
	}
}

// resetAgentLocked forgets what we know about the agent process (it may have changed): caps are
// re-detected, the failure throttle and unsupported marks are cleared, the boot window restarts.
func (p *QemuGuestAgentPoller) resetAgentLocked(d *domain, now time.Time) {
	d.lastCheck[tCaps] = time.Time{}
	d.lastFailure = time.Time{}
	d.unsupported = nil
	d.bootStart = now
	d.stats = domainStats{} // a new agent process (or guest boot): counters restart
}

// upsertLocked applies a virt snapshot; it returns whether the domain should be polled now.
func (p *QemuGuestAgentPoller) upsertLocked(vd virt.Domain, now time.Time) (*domain, bool) {
	d := p.doms[vd.UUID]
	if d == nil {
		d = &domain{uuid: vd.UUID, channel: guest.ChannelUnknown, bootStart: now, lock: make(chan struct{}, 1)}
		d.st.Channel = guest.ChannelUnknown
		p.doms[vd.UUID] = d
	}
	d.removed = false
	d.name = vd.Name
	d.state = vd.State
	kick := false
	if vd.QGAChannel != d.channel {
		if vd.QGAChannel == guest.ChannelConnected {
			p.resetAgentLocked(d, now)
			kick = true
		}
		d.channel = vd.QGAChannel
	}
	return d, kick
}

// Tick runs one scheduling pass: reconcile domains, clean up vanished ones, queue every domain
// that is runnable and has something due. Run calls it every Config.Tick; tests call it directly.
func (p *QemuGuestAgentPoller) Tick() {
	defer p.ticks.Add(1)
	now := p.cfg.Clock.Now()
	var vds []virt.Domain
	if p.cfg.Domains != nil {
		vds = p.cfg.Domains()
	}
	var changed, kicked []string
	p.mu.Lock()
	if p.cfg.Domains != nil {
		seen := make(map[string]bool, len(vds))
		for _, vd := range vds {
			seen[vd.UUID] = true
			if _, kick := p.upsertLocked(vd, now); kick {
				kicked = append(kicked, vd.UUID)
			}
		}
		for u, d := range p.doms {
			if !seen[u] {
				d.removed = true
			}
		}
	}
	var due []string
	for u, d := range p.doms {
		if d.removed {
			// periodic cleanup; a run still in flight keeps the entry until it returns
			select {
			case d.lock <- struct{}{}:
				delete(p.doms, u)
				p.log.V(1).Info("QGA poller forgot vanished domain", "domain", d.name, "domainUUID", u)
			default:
			}
			continue
		}
		if p.syncChannelStateLocked(d) {
			changed = append(changed, u)
		}
		if !d.queued && p.runnableLocked(d, now) && len(p.planLocked(d, now)) > 0 {
			due = append(due, u)
		}
	}
	p.mu.Unlock()
	for _, u := range changed {
		p.notify(u)
	}
	queued := map[string]bool{}
	for _, u := range slices.Concat(kicked, due) {
		if !queued[u] { // once per tick, or a fast run would be repeated at the same instant
			queued[u] = true
			p.enqueue(u, now)
		}
	}
}

// syncChannelStateLocked mirrors the channel into State; true when that is a change.
func (p *QemuGuestAgentPoller) syncChannelStateLocked(d *domain) bool {
	if d.st.Channel == d.channel {
		return false
	}
	d.st.Channel = d.channel
	if d.channel != guest.ChannelConnected {
		d.st.Responsive = false
	}
	return true
}

func (p *QemuGuestAgentPoller) enqueue(uuid string, now time.Time) {
	p.mu.Lock()
	d := p.doms[uuid]
	if d == nil || d.queued || d.removed || !p.runnableLocked(d, now) {
		p.mu.Unlock()
		return
	}
	d.queued = true
	d.queuedAt = now
	p.mu.Unlock()
	select {
	case p.queue <- uuid:
	default: // pool saturated: try again next tick
		p.mu.Lock()
		d.queued = false
		p.mu.Unlock()
	}
}

// runnableLocked: running, channel connected, not throttled after a failure.
func (p *QemuGuestAgentPoller) runnableLocked(d *domain, now time.Time) bool {
	if d.state != virt.StateRunning || d.channel != guest.ChannelConnected {
		return false
	}
	return d.lastFailure.IsZero() || now.Sub(d.lastFailure) >= p.cfg.FailureThrottle
}

func (p *QemuGuestAgentPoller) inBootWindow(d *domain, now time.Time) bool {
	return now.Sub(d.bootStart) <= p.cfg.BootWindow
}

// planLocked lists the tasks due now (only the capability check while caps are unknown).
func (p *QemuGuestAgentPoller) planLocked(d *domain, now time.Time) []task {
	var out []task
	due := func(t task) bool {
		if statsTask(t) && p.cfg.Periods.Stats < 0 {
			return false // disabled
		}
		if (t == tFS || t == tDisks) && !d.hotplugDue.IsZero() && !now.Before(d.hotplugDue) && d.lastCheck[t].Before(d.hotplugDue) {
			return true // the one-off refresh after a hotplug
		}
		return d.lastCheck[t].IsZero() || now.Sub(d.lastCheck[t]) >= p.period(t)
	}
	if due(tCaps) || (d.caps == nil && p.inBootWindow(d, now)) {
		out = append(out, tCaps)
	}
	if d.caps == nil {
		return out
	}
	for t := tUsers; t < numTasks; t++ {
		// time first: every domain is planned every tick, and most of its tasks are not due
		if !due(t) && (t != tNetwork || !p.inBootWindow(d, now) || HasRoutableAddress(d.info.Network)) {
			continue
		}
		if cmd := taskCmd[t]; d.caps.Enabled(cmd) && !d.unsupported[cmd] {
			out = append(out, t)
		}
	}
	return out
}
