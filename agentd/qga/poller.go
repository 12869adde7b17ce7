package qga

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// Clock is the poller's time source (injectable for tests).
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Periods are the per-group polling periods.
type Periods struct {
	Caps  time.Duration // guest-info (default 300 s)
	Users time.Duration // guest-get-users (default 10 s)
	Sys   time.Duration // hostname, OS, timezone, interfaces, devices (default 120 s)
	CPUs  time.Duration // guest-get-vcpus (default 60 s)
	Disks time.Duration // guest-get-fsinfo, guest-get-disks (default 300 s)
}

// Config configures a QemuGuestAgentPoller. Zero values take the documented defaults.
type Config struct {
	// API reaches the agents (LibvirtAPI in production). Required.
	API DomainAPI
	// Domains, when set, is read at every tick and is the authority on which domains exist,
	// their run state and their QGA channel state (normally (*virt.Manager).Domains). Domains
	// absent from it are cleaned up. HandleEvent feeds the same information promptly.
	Domains func() []virt.Domain
	// Tick is the scheduling cadence (default 5 s); periods are effectively rounded up to it.
	Tick    time.Duration
	Periods Periods
	// BootWindow after a domain start or agent connect during which capabilities (while
	// unknown) and interfaces (while no routable address is known) are re-checked every tick
	// (default 120 s).
	BootWindow time.Duration
	// CallTimeout bounds each poll call (default 1 s).
	CallTimeout time.Duration
	// RequestTimeout bounds request methods other than Ping when ctx has no deadline (default 10 s).
	RequestTimeout time.Duration
	// FailureThrottle: a domain whose call failed is not polled again for this long (default 60 s).
	FailureThrottle time.Duration
	// Workers bounds concurrent domain runs (default 4); QueueSize bounds pending runs (default 400).
	Workers, QueueSize int
	// TaskTimeout: a domain run lasting longer frees its worker slot (the run is abandoned, the
	// domain stays blocked until it returns) (default 30 s).
	TaskTimeout time.Duration
	Clock       Clock
	Log         logr.Logger
	// OnChange is called (from a poller goroutine, never with locks held) when a domain's Info
	// or State changed. It must not block long.
	OnChange func(domainUUID string)
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Tick, 5*time.Second)
	def(&c.Periods.Caps, 300*time.Second)
	def(&c.Periods.Users, 10*time.Second)
	def(&c.Periods.Sys, 120*time.Second)
	def(&c.Periods.CPUs, 60*time.Second)
	def(&c.Periods.Disks, 300*time.Second)
	def(&c.BootWindow, 120*time.Second)
	def(&c.CallTimeout, time.Second)
	def(&c.RequestTimeout, 10*time.Second)
	def(&c.FailureThrottle, 60*time.Second)
	def(&c.TaskTimeout, 30*time.Second)
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 400
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
}

// CallError describes the last failed agent call of a domain.
type CallError struct {
	Class   ErrorClass
	Command string
	Message string
	Time    time.Time
}

// State is the poller's view of one domain's QEMU guest agent.
type State struct {
	// Channel is the virtio channel state (from libvirt events / XML).
	Channel guest.ChannelState
	// Version is the agent version from guest-info ("" while unknown).
	Version string
	// SupportedCommands are the commands guest-info lists as enabled, sorted.
	SupportedCommands []string
	// UnsupportedCommands are commands the poller would use that the agent does not offer
	// (not listed, disabled) or that libvirt/the agent rejected as unsupported. They are not
	// retried until the capabilities change or the agent reconnects.
	UnsupportedCommands []string
	// LastError is the last failed call. It is kept after later successes for diagnosis;
	// Responsive (not LastError) says whether the agent currently works.
	LastError *CallError
	// LastSuccess is the time of the last successful call.
	LastSuccess time.Time
	// Responsive is true when the last call that reached the agent succeeded.
	Responsive bool
}

func (s State) deepCopy() State {
	s.SupportedCommands = slices.Clone(s.SupportedCommands)
	s.UnsupportedCommands = slices.Clone(s.UnsupportedCommands)
	if s.LastError != nil {
		e := *s.LastError
		s.LastError = &e
	}
	return s
}

// comparable view: timestamps excluded so that a routine success does not count as a change
func (s State) changeKey() State {
	s = s.deepCopy()
	s.LastSuccess = time.Time{}
	if s.LastError != nil {
		s.LastError.Time = time.Time{}
	}
	return s
}

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
	numTasks
)

var taskCmd = [numTasks]string{CmdInfo, CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices, CmdVCPUs, CmdFSInfo, CmdDisks}

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
	}
	return p.cfg.Periods.Sys
}

type domain struct {
	uuid, name  string
	state       virt.State
	channel     guest.ChannelState
	bootStart   time.Time
	caps        *Caps
	lastCheck   [numTasks]time.Time
	lastFailure time.Time
	unsupported map[string]bool
	info        guest.Info
	st          State
	lock        chan struct{} // one in-flight agent call per domain
	queued      bool
	queuedAt    time.Time // the tick or event that queued the current run
	removed     bool
	stuckLogged bool
}

// QemuGuestAgentPoller polls the QEMU guest agents of all domains on the node and serves the
// QGA request methods. Create it with NewQemuGuestAgentPoller and start it with Run; Info, State
// and the request methods are safe for concurrent use.
type QemuGuestAgentPoller struct {
	cfg   Config
	log   logr.Logger
	mu    sync.Mutex
	doms  map[string]*domain
	queue chan string
	ticks atomic.Int64
}

// NewQemuGuestAgentPoller returns a QemuGuestAgentPoller; it does nothing until Run.
func NewQemuGuestAgentPoller(cfg Config) (*QemuGuestAgentPoller, error) {
	if cfg.API == nil {
		return nil, errors.New("qga: Config.API is required")
	}
	cfg.defaults()
	return &QemuGuestAgentPoller{cfg: cfg, log: cfg.Log, doms: map[string]*domain{}, queue: make(chan string, cfg.QueueSize)}, nil
}

// Run starts the worker pool and ticks every Config.Tick until ctx is done. Abandoned (hung)
// calls may outlive Run; they hold no worker slot.
func (p *QemuGuestAgentPoller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < p.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.worker(ctx)
		}()
	}
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	p.Tick()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
			p.Tick()
		}
	}
}

func (p *QemuGuestAgentPoller) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case uuid := <-p.queue:
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.runDomain(ctx, uuid)
			}()
			timer := time.NewTimer(p.cfg.TaskTimeout)
			select {
			case <-done:
			case <-timer.C:
				p.mu.Lock()
				if d := p.doms[uuid]; d != nil && !d.stuckLogged {
					d.stuckLogged = true
					p.log.Info("QGA poll run exceeded the task timeout; freeing its worker", "domain", d.name, "uuid", uuid, "timeout", p.cfg.TaskTimeout)
				}
				p.mu.Unlock()
			case <-ctx.Done():
			}
			timer.Stop()
		}
	}
}

// HandleEvent feeds a virt event to the poller (optional when Config.Domains is set, but it
// makes reactions immediate: a connected channel or a (re)started domain is polled at once with
// capabilities re-detected).
func (p *QemuGuestAgentPoller) HandleEvent(ev virt.Event) {
	switch ev.Type {
	case virt.EventDomainAdded, virt.EventDomainUpdated, virt.EventAgentChannel:
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
				p.log.V(1).Info("QGA poller forgot vanished domain", "domain", d.name, "uuid", u)
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
		return d.lastCheck[t].IsZero() || now.Sub(d.lastCheck[t]) >= p.period(t)
	}
	if due(tCaps) || (d.caps == nil && p.inBootWindow(d, now)) {
		out = append(out, tCaps)
	}
	if d.caps == nil {
		return out
	}
	for t := tUsers; t < numTasks; t++ {
		cmd := taskCmd[t]
		if !d.caps.Enabled(cmd) || d.unsupported[cmd] {
			continue
		}
		if due(t) || (t == tNetwork && p.inBootWindow(d, now) && !HasRoutableAddress(d.info.Network)) {
			out = append(out, t)
		}
	}
	return out
}

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

func (p *QemuGuestAgentPoller) notify(uuid string) {
	if p.cfg.OnChange != nil {
		p.cfg.OnChange(uuid)
	}
}

// runTask performs one call and records its outcome. stop reports that the rest of the run must
// be skipped (the agent or domain is not usable right now).
func (p *QemuGuestAgentPoller) runTask(ctx context.Context, d *domain, t task, now time.Time) (changed, stop bool) {
	cmd := taskCmd[t]
	to := p.cfg.CallTimeout
	api := p.cfg.API
	var apply func(*guest.Info)
	var gotCaps *Caps
	var err error
	switch t {
	case tCaps:
		var raw []byte
		if raw, err = api.Raw(ctx, d.uuid, CmdInfo, to); err == nil {
			var ai *AgentInfo
			if ai, err = ParseAgentInfo(raw); err != nil {
				err = &Error{Class: ErrAgentError, Command: cmd, Err: err}
			} else {
				gotCaps = newCaps(ai)
			}
		}
	case tUsers, tOS, tTimezone, tHostname, tFS, tDisks:
		it := map[task]InfoType{tUsers: InfoUsers, tOS: InfoOS, tTimezone: InfoTimezone, tHostname: InfoHostname, tFS: InfoFilesystem, tDisks: InfoDisks}[t]
		var r *GuestInfoReply
		if r, err = api.GuestInfo(ctx, d.uuid, it, to); err == nil && r != nil {
			if p.wouldBlank(d, it, r) {
				// an empty list replacing a non-empty one: make sure the agent really
				// answered (libvirt can return an empty success for a hung agent)
				err = p.confirmAlive(ctx, d)
			}
			if err == nil {
				apply = p.applyGuestInfo(d, it, r)
			}
		}
	case tNetwork:
		var ifs []NetInterface
		if ifs, err = api.Interfaces(ctx, d.uuid, to); err == nil {
			n := TranslateInterfaces(ifs)
			apply = func(i *guest.Info) { i.Network = n }
		}
	case tCPUs:
		var vs []VCPU
		if vs, err = api.VCPUs(ctx, d.uuid, to); err == nil {
			if v := TranslateVCPUs(vs); v != nil {
				apply = func(i *guest.Info) { i.VCPUs = v }
			} else {
				p.log.V(1).Info("guest-get-vcpus returned nothing usable", "domain", d.name)
			}
		}
	case tDevices:
		var raw []byte
		if raw, err = api.Raw(ctx, d.uuid, CmdDevices, to); err == nil {
			var devs *guest.PCIDevices
			if devs, err = TranslateDevices(raw); err != nil {
				err = &Error{Class: ErrAgentError, Command: cmd, Err: err}
			} else {
				apply = func(i *guest.Info) { i.PCIDevices = devs }
			}
		}
	}
	end := p.cfg.Clock.Now()

	p.mu.Lock()
	defer p.mu.Unlock()
	oldInfo := d.info.DeepCopy()
	oldKey := d.st.changeKey()
	d.lastCheck[t] = now
	if err == nil {
		if gotCaps != nil {
			p.setCapsLocked(d, gotCaps)
		}
		if apply != nil {
			apply(&d.info)
		}
		d.st.LastSuccess = end
		if !d.st.Responsive {
			p.log.Info("QEMU guest agent responsive", "domain", d.name, "uuid", d.uuid, "version", d.st.Version)
		}
		d.st.Responsive = true
	} else {
		class := ClassOf(err)
		prevClass := ErrorClass("")
		if d.st.LastError != nil {
			prevClass = d.st.LastError.Class
		}
		d.st.LastError = &CallError{Class: class, Command: cmd, Message: err.Error(), Time: end}
		switch class {
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
			// AgentError/LibvirtError: the agent answered, this one command is broken. It waits
			// for its own period (lastCheck); the rest of the run goes on. A failing guest-info
			// throttles the domain (nothing can be sent without capabilities).
			if t == tCaps {
				d.lastFailure = end
				stop = true
			}
		}
		if class != prevClass {
			p.log.Info("QEMU guest agent call failed", "domain", d.name, "uuid", d.uuid, "command", cmd, "class", string(class), "error", err.Error())
		}
	}
	if t == tCaps && d.caps == nil {
		stop = true
	}
	changed = !reflect.DeepEqual(oldInfo, &d.info) || !reflect.DeepEqual(oldKey, d.st.changeKey())
	return changed, stop
}

func (p *QemuGuestAgentPoller) setCapsLocked(d *domain, c *Caps) {
	if d.caps == nil || d.caps.Version != c.Version || !slices.Equal(d.caps.EnabledList(), c.EnabledList()) {
		p.log.Info("QEMU guest agent capabilities", "domain", d.name, "uuid", d.uuid, "version", c.Version, "commands", len(c.enabled))
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
	for t := tUsers; t < numTasks; t++ {
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

// Info returns a deep copy of the domain's QGA-sourced guest data.
func (p *QemuGuestAgentPoller) Info(uuid string) (*guest.Info, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.doms[uuid]
	if d == nil || d.removed {
		return nil, false
	}
	return d.info.DeepCopy(), true
}

// State returns a copy of the domain's QGA state.
func (p *QemuGuestAgentPoller) State(uuid string) (State, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.doms[uuid]
	if d == nil || d.removed {
		return State{}, false
	}
	return d.st.deepCopy(), true
}

// ---- requests (command executor) ----

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

// FSFreeze freezes the given guest mountpoints (all when empty).
func (p *QemuGuestAgentPoller) FSFreeze(ctx context.Context, uuid string, mountpoints []string) error {
	cmd := CmdFSFreeze
	if len(mountpoints) > 0 {
		cmd = CmdFSFreezeList
	}
	return p.request(ctx, uuid, cmd, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.FSFreeze(ctx, uuid, mountpoints, to)
	})
}

// FSThaw thaws the guest filesystems.
func (p *QemuGuestAgentPoller) FSThaw(ctx context.Context, uuid string, mountpoints []string) error {
	return p.request(ctx, uuid, CmdFSThaw, p.cfg.RequestTimeout, func(to time.Duration) error {
		return p.cfg.API.FSThaw(ctx, uuid, mountpoints, to)
	})
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
