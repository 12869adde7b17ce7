package qga

// One domain's polling run: the agent calls of its due groups and how their outcomes are recorded.

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	"guestagent.io/operator/agentd/guest"
)

// runDomain is one domain's turn: capabilities first, then every due group.
func (p *QemuGuestAgentPoller) runDomain(ctx context.Context, uuid string) {
	p.mu.Lock()
	d := p.doms[uuid]
	if d == nil {
		p.mu.Unlock()
		return
	}
	d.queued = false
	select {
	case d.lock <- struct{}{}:
	default: // a request holds the agent; next tick
		p.mu.Unlock()
		return
	}
	defer func() { <-d.lock }()
	// The run belongs to the tick (or event) that queued it: checks are stamped with that time,
	// not with the run's start, which trails it (worker pool, libvirt latency); stamped late,
	// every period would stretch to the next tick (10 s users polls every 15 s at 1,000 domains).
	now := d.queuedAt
	if now.IsZero() {
		now = p.cfg.Clock.Now()
	}
	if d.removed || !p.runnableLocked(d, now) {
		p.mu.Unlock()
		return
	}
	d.stuckLogged = false
	plan := p.planLocked(d, now)
	p.mu.Unlock()

	changed := false
	if len(plan) > 0 && plan[0] == tCaps {
		c, stop := p.runTask(ctx, d, tCaps, now)
		changed = changed || c
		if stop {
			p.finish(uuid, changed)
			return
		}
		p.mu.Lock()
		plan = p.planLocked(d, now)
		p.mu.Unlock()
	}
	for _, t := range plan {
		if t == tCaps {
			continue
		}
		c, stop := p.runTask(ctx, d, t, now)
		changed = changed || c
		if stop {
			break
		}
	}
	p.finish(uuid, changed)
}

func (p *QemuGuestAgentPoller) finish(uuid string, changed bool) {
	if changed {
		p.notify(uuid)
	}
}

// runTask performs one call and records its outcome. stop reports that the rest of the run must
// be skipped (the agent or domain is not usable right now).
func (p *QemuGuestAgentPoller) runTask(ctx context.Context, d *domain, t task, now time.Time) (changed, stop bool) {
	res := p.call(ctx, d, t)
	end := p.cfg.Clock.Now()

	p.mu.Lock()
	defer p.mu.Unlock()
	// Shallow copies suffice: apply functions and the record functions replace fields (and
	// the slices of State) instead of changing what they point to, so an unchanged field is the
	// same pointer and compares in O(1).
	oldInfo, oldSt := d.info, d.st
	d.lastCheck[t] = now
	if res.err == nil {
		p.recordSuccessLocked(d, t, res, end)
	} else {
		stop = p.recordFailureLocked(d, t, res.err, end)
	}
	if t == tCaps && d.caps == nil {
		stop = true
	}
	changed = !oldSt.sameAs(d.st) || (res.apply != nil && !reflect.DeepEqual(oldInfo, d.info))
	return changed, stop
}

// taskResult is the outcome of one agent call: on success, the new capabilities (tCaps) or the
// mutation of the guest data (nil: nothing usable, keep what is known).
type taskResult struct {
	caps  *Caps
	apply func(*guest.Info)
	stats func(*domainStats) // metrics-only tasks
	err   error
}

// call performs task t's agent call (without p.mu held).
func (p *QemuGuestAgentPoller) call(ctx context.Context, d *domain, t task) taskResult {
	switch t {
	case tCaps:
		return p.callCaps(ctx, d)
	case tUsers, tOS, tTimezone, tHostname, tFS, tDisks:
		return p.callGuestInfo(ctx, d, taskInfoType[t])
	case tNetwork:
		ifs, err := p.cfg.API.Interfaces(ctx, d.uuid, p.cfg.CallTimeout)
		if err != nil {
			return taskResult{err: err}
		}
		n := TranslateInterfaces(ifs)
		return taskResult{apply: func(i *guest.Info) { i.Network = n }}
	case tCPUs:
		vs, err := p.cfg.API.VCPUs(ctx, d.uuid, p.cfg.CallTimeout)
		if err != nil {
			return taskResult{err: err}
		}
		v := TranslateVCPUs(vs)
		if v == nil {
			p.log.V(1).Info("Guest returned no usable vCPUs from guest-get-vcpus", "domain", d.name)
			return taskResult{}
		}
		return taskResult{apply: func(i *guest.Info) { i.VCPUs = v }}
	case tLoad, tCPUStats, tDiskStats:
		return p.callStats(ctx, d, t)
	case tDevices:
		raw, err := p.cfg.API.Raw(ctx, d.uuid, CmdDevices, p.cfg.CallTimeout)
		if err != nil {
			return taskResult{err: err}
		}
		devs, err := TranslateDevices(raw)
		if err != nil {
			return taskResult{err: &Error{Class: ErrAgentError, Command: CmdDevices, Err: err}}
		}
		return taskResult{apply: func(i *guest.Info) { i.PCIDevices = devs }}
	}
	return taskResult{}
}

// callStats performs a metrics-only task through the raw command (libvirt 9.0 has no typed API
// for any of them).
func (p *QemuGuestAgentPoller) callStats(ctx context.Context, d *domain, t task) taskResult {
	cmd := taskCmd[t]
	raw, err := p.cfg.API.Raw(ctx, d.uuid, cmd, p.cfg.CallTimeout)
	if err != nil {
		return taskResult{err: err}
	}
	bad := func(err error) taskResult {
		return taskResult{err: &Error{Class: ErrAgentError, Command: cmd, Err: err}}
	}
	switch t {
	case tLoad:
		l, err := TranslateLoad(raw)
		if err != nil {
			return bad(err)
		}
		return taskResult{stats: func(s *domainStats) { s.load = l }}
	case tCPUStats:
		c, err := TranslateCPUStats(raw)
		if err != nil {
			return bad(err)
		}
		return taskResult{stats: func(s *domainStats) { s.cpu = c }}
	default:
		ds, err := TranslateDiskStats(raw)
		if err != nil {
			return bad(err)
		}
		return taskResult{stats: func(s *domainStats) { s.disks = ds }}
	}
}

// taskInfoType is the GetGuestInfo type of the tasks served by it.
var taskInfoType = map[task]InfoType{tUsers: InfoUsers, tOS: InfoOS, tTimezone: InfoTimezone, tHostname: InfoHostname, tFS: InfoFilesystem, tDisks: InfoDisks}

// callCaps reads the agent's capabilities (guest-info).
func (p *QemuGuestAgentPoller) callCaps(ctx context.Context, d *domain) taskResult {
	raw, err := p.cfg.API.Raw(ctx, d.uuid, CmdInfo, p.cfg.CallTimeout)
	if err != nil {
		return taskResult{err: err}
	}
	ai, err := ParseAgentInfo(raw)
	if err != nil {
		return taskResult{err: &Error{Class: ErrAgentError, Command: CmdInfo, Err: err}}
	}
	caps := newCaps(ai)
	if p.frozenCaps(ctx, d, caps, p.cfg.CallTimeout) {
		return taskResult{} // the agent disabled them for the freeze only
	}
	return taskResult{caps: caps}
}

// callGuestInfo reads one GetGuestInfo group.
func (p *QemuGuestAgentPoller) callGuestInfo(ctx context.Context, d *domain, it InfoType) taskResult {
	r, err := p.cfg.API.GuestInfo(ctx, d.uuid, it, p.cfg.CallTimeout)
	if err != nil || r == nil {
		return taskResult{err: err}
	}
	if p.wouldBlank(d, it, r) {
		// an empty list replacing a non-empty one: make sure the agent really answered (libvirt
		// can return an empty success for a hung agent)
		if err := p.confirmAlive(ctx, d); err != nil {
			return taskResult{err: err}
		}
	}
	return taskResult{apply: p.applyGuestInfo(d, it, r)}
}

// recordSuccessLocked records a successful call at end.
func (p *QemuGuestAgentPoller) recordSuccessLocked(d *domain, t task, res taskResult, end time.Time) {
	if res.caps != nil {
		p.setCapsLocked(d, res.caps)
	}
	if t != tCaps && d.st.FSFreeze == FreezeFrozen {
		d.st.FSFreeze = FreezeThawed // a command the freeze disables answered
		p.log.Info("QEMU guest agent filesystems thawed", "domain", d.name, "domainUUID", d.uuid)
	}
	if res.apply != nil {
		res.apply(&d.info)
	}
	if res.stats != nil {
		res.stats(&d.stats)
	}
	if statsTask(t) && d.statsErr[t-tLoad] != "" {
		p.log.V(1).Info("QEMU guest agent stats command works again", "domain", d.name, "domainUUID", d.uuid, "qgaCommand", taskCmd[t])
		d.statsErr[t-tLoad] = ""
	}
	d.st.LastSuccess = end
	if !d.st.Responsive {
		p.log.Info("QEMU guest agent responsive", "domain", d.name, "domainUUID", d.uuid, "version", d.st.Version)
	}
	d.st.Responsive = true
}

// recordFailureLocked records task t's failed call at end; stop reports that the rest of the run
// must be skipped.
func (p *QemuGuestAgentPoller) recordFailureLocked(d *domain, t task, err error, end time.Time) (stop bool) {
	cmd := taskCmd[t]
	class := ClassOf(err)
	if statsTask(t) && class != ErrTimeout && class != ErrNotConnected && class != ErrDomainNotRunning && class != ErrFrozen {
		p.recordStatsFailureLocked(d, t, class, err)
		return false
	}
	prevClass := ErrorClass("")
	if d.st.LastError != nil {
		prevClass = d.st.LastError.Class
	}
	d.st.LastError = &CallError{Class: class, Command: cmd, Message: err.Error(), Time: end}
	switch class {
	case ErrFrozen:
		// supported, disabled until the thaw: asked again at its next period
		if d.st.FSFreeze != FreezeFrozen {
			d.st.FSFreeze = FreezeFrozen
			p.log.Info("QEMU guest agent filesystems frozen", "domain", d.name, "domainUUID", d.uuid)
		}
	case ErrUnsupported:
		// the agent answered: it just cannot do this; never ask again for this agent
		if d.unsupported == nil {
			d.unsupported = map[string]bool{}
		}
		d.unsupported[cmd] = true
		p.refreshUnsupportedLocked(d)
		if t == tCaps {
			d.lastFailure = end
			stop = true
		}
	case ErrNotConnected, ErrDomainNotRunning:
		// not the agent's fault: no throttle, the next event/tick decides
		d.st.Responsive = false
		stop = true
	case ErrTimeout:
		// a hung or overloaded agent: leave it alone for the throttle interval
		d.lastFailure = end
		d.st.Responsive = false
		stop = true
	default:
		// AgentError/LibvirtError: the agent answered, this one command is broken. It waits for
		// its own period (lastCheck); the rest of the run goes on. A failing guest-info throttles
		// the domain (nothing can be sent without capabilities).
		if t == tCaps {
			d.lastFailure = end
			stop = true
		}
	}
	if class != prevClass {
		p.log.Info("QEMU guest agent call failed", "domain", d.name, "domainUUID", d.uuid, "qgaCommand", cmd, "class", string(class), "error", err.Error())
	}
	return stop
}

// recordStatsFailureLocked records the failure of a metrics-only command that says nothing about
// the agent as a whole (unsupported, agent or libvirt error): it stays out of State (and thus out
// of the published status), its stale figures are dropped, and an unsupported command is not sent
// again to this agent.
func (p *QemuGuestAgentPoller) recordStatsFailureLocked(d *domain, t task, class ErrorClass, err error) {
	cmd := taskCmd[t]
	if class == ErrUnsupported {
		if d.unsupported == nil {
			d.unsupported = map[string]bool{}
		}
		d.unsupported[cmd] = true
	}
	switch t {
	case tLoad:
		d.stats.load = nil
	case tCPUStats:
		d.stats.cpu = nil
	case tDiskStats:
		d.stats.disks = nil
	}
	if d.statsErr[t-tLoad] != class {
		d.statsErr[t-tLoad] = class
		p.log.V(1).Info("QEMU guest agent stats command failed", "domain", d.name, "domainUUID", d.uuid, "qgaCommand", cmd, "class", string(class), "error", err.Error())
	}
}

// frozenCaps reports whether c comes from an agent whose filesystems are frozen: qemu-ga then
// lists every command but a few as disabled until the thaw. Only when c disables commands the
// known capabilities enabled is the agent asked (guest-fsfreeze-status, allowed while frozen).
func (p *QemuGuestAgentPoller) frozenCaps(ctx context.Context, d *domain, c *Caps, to time.Duration) bool {
	p.mu.Lock()
	lost := false
	if d.caps != nil && d.caps.Version == c.Version && c.Enabled(CmdFSFreezeState) {
		for _, cmd := range d.caps.EnabledList() {
			lost = lost || !c.Enabled(cmd)
		}
	}
	p.mu.Unlock()
	if !lost {
		return false
	}
	if st, err := p.freezeStatus(ctx, d.uuid, to); err != nil || st != FreezeFrozen {
		return false
	}
	p.mu.Lock()
	if d.st.FSFreeze != FreezeFrozen {
		d.st.FSFreeze = FreezeFrozen
		p.log.Info("QEMU guest agent filesystems frozen", "domain", d.name, "domainUUID", d.uuid)
	}
	p.mu.Unlock()
	return true
}

// freezeStatus reads guest-fsfreeze-status (allowed while frozen): FreezeFrozen or FreezeThawed.
// The caller holds the domain's agent lock.
func (p *QemuGuestAgentPoller) freezeStatus(ctx context.Context, uuid string, to time.Duration) (string, error) {
	raw, err := p.cfg.API.Raw(ctx, uuid, CmdFSFreezeState, to)
	if err != nil {
		return "", err
	}
	var st string
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", &Error{Class: ErrAgentError, Command: CmdFSFreezeState, Err: err}
	}
	switch st {
	case "frozen":
		return FreezeFrozen, nil
	case "thawed":
		return FreezeThawed, nil
	}
	return "", &Error{Class: ErrAgentError, Command: CmdFSFreezeState, Err: fmt.Errorf("unknown freeze status %q", st)}
}

func (p *QemuGuestAgentPoller) setCapsLocked(d *domain, c *Caps) {
	if d.caps == nil || d.caps.Version != c.Version || !slices.Equal(d.caps.EnabledList(), c.EnabledList()) {
		p.log.Info("QEMU guest agent capabilities", "domain", d.name, "domainUUID", d.uuid, "version", c.Version, "commands", len(c.enabled))
		d.unsupported = nil // a different agent: give everything another chance
	}
	d.caps = c
	d.st.Version = c.Version
	d.st.SupportedCommands = c.EnabledList()
	p.refreshUnsupportedLocked(d)
}

// refreshUnsupportedLocked recomputes State.UnsupportedCommands: needed commands the agent does
// not enable plus those rejected as unsupported.
func (p *QemuGuestAgentPoller) refreshUnsupportedLocked(d *domain) {
	var out []string
	for t := tUsers; t < tLoad; t++ { // metrics-only commands stay out of the status
		cmd := taskCmd[t]
		if (d.caps != nil && !d.caps.Enabled(cmd)) || d.unsupported[cmd] {
			out = append(out, cmd)
		}
	}
	if d.unsupported[CmdInfo] {
		out = append(out, CmdInfo)
	}
	slices.Sort(out)
	if !slices.Equal(out, d.st.UnsupportedCommands) && len(out) > 0 {
		p.log.V(1).Info("QEMU guest agent commands unavailable", "domain", d.name, "commands", out)
	}
	d.st.UnsupportedCommands = out
}

// wouldBlank reports whether r would replace a non-empty list group with an empty one.
func (p *QemuGuestAgentPoller) wouldBlank(d *domain, t InfoType, r *GuestInfoReply) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch t {
	case InfoUsers:
		return len(r.Users) == 0 && d.info.Users != nil && len(d.info.Users.List) > 0
	case InfoFilesystem:
		return len(r.FS) == 0 && d.info.Filesystems != nil && len(d.info.Filesystems.List) > 0
	case InfoDisks:
		return len(r.Disks) == 0 && d.info.Disks != nil && len(d.info.Disks.Mappings) > 0
	}
	return false
}

// confirmAlive pings the agent (when guest-ping is enabled).
func (p *QemuGuestAgentPoller) confirmAlive(ctx context.Context, d *domain) error {
	p.mu.Lock()
	ok := d.caps.Enabled(CmdPing)
	p.mu.Unlock()
	if !ok {
		return nil
	}
	_, err := p.cfg.API.Raw(ctx, d.uuid, CmdPing, p.cfg.CallTimeout)
	return err
}

// applyGuestInfo returns the mutation for one GetGuestInfo reply (nil: nothing usable, keep).
func (p *QemuGuestAgentPoller) applyGuestInfo(d *domain, t InfoType, r *GuestInfoReply) func(*guest.Info) {
	switch t {
	case InfoUsers:
		u := TranslateUsers(r.Users)
		return func(i *guest.Info) { i.Users = u }
	case InfoOS:
		if o := TranslateOS(r.OS); o != nil {
			return func(i *guest.Info) { i.OS = o }
		}
	case InfoTimezone:
		if tz := TranslateTimezone(r.Timezone); tz != nil {
			return func(i *guest.Info) { i.Timezone = tz }
		}
	case InfoHostname:
		if h := TranslateHostname(r.Hostname); h != nil {
			return func(i *guest.Info) { i.Hostname = h }
		}
	case InfoFilesystem:
		fs := TranslateFilesystems(r.FS)
		return func(i *guest.Info) {
			i.Filesystems = fs
			// guest-get-disks is the better source; fsinfo's mapping only stands in without
			// it (runs under p.mu, like every apply function)
			if d.caps == nil || !d.caps.Enabled(CmdDisks) || d.unsupported[CmdDisks] {
				i.Disks = DiskMappingFromFilesystems(r.FS)
			}
		}
	case InfoDisks:
		dm := TranslateDisks(r.Disks)
		return func(i *guest.Info) { i.Disks = dm }
	}
	return nil
}
