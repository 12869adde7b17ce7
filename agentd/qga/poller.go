package qga

import (
	"context"
	"errors"
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
	// Stats: guest-get-load, guest-get-cpustats, guest-get-diskstats, metrics only (default
	// 60 s; negative disables them: they are never sent).
	Stats time.Duration
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
	if c.Periods.Stats == 0 {
		c.Periods.Stats = 60 * time.Second
	}
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
	// hotplugDue is when the one-off filesystems/disks refresh after a device hot(un)plug is due
	// (zero: none was ever scheduled).
	hotplugDue time.Time
	// stats is the metrics-only data; statsErr the last error class per stats task (for
	// transition logs).
	stats    domainStats
	statsErr [numTasks - tLoad]ErrorClass
}

// domainStats is a domain's metrics-only data (see Stats).
type domainStats struct {
	load  *guest.Load
	cpu   *guest.CPUTimes
	disks []guest.DiskIO
}

// StatsPeriod converts the configured stats period (0: disabled) to Periods.Stats.
func StatsPeriod(configured time.Duration) time.Duration {
	if configured <= 0 {
		return -1
	}
	return configured
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
					p.log.Info("QGA poll run exceeded the task timeout; freeing its worker", "domain", d.name, "domainUUID", uuid, "timeout", p.cfg.TaskTimeout)
				}
				p.mu.Unlock()
			case <-ctx.Done():
			}
			timer.Stop()
		}
	}
}

func (p *QemuGuestAgentPoller) notify(uuid string) {
	if p.cfg.OnChange != nil {
		p.cfg.OnChange(uuid)
	}
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

// Stats returns a copy of the domain's metrics-only figures (load, CPU time, disk I/O), or nil
// when there are none: unknown domain, not running, agent channel not connected. Only parts
// whose command the current agent enables (and did not reject) are returned. Stats never take
// part in change notifications.
func (p *QemuGuestAgentPoller) Stats(uuid string) *guest.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.doms[uuid]
	if d == nil || d.removed || d.state != virt.StateRunning || d.channel != guest.ChannelConnected || p.cfg.Periods.Stats < 0 {
		return nil
	}
	usable := func(t task) bool { return d.caps.Enabled(taskCmd[t]) && !d.unsupported[taskCmd[t]] }
	s := &guest.Stats{}
	if usable(tLoad) {
		s.Load = d.stats.load
	}
	if usable(tCPUStats) {
		s.CPU = d.stats.cpu
	}
	if usable(tDiskStats) {
		s.Disks = d.stats.disks
	}
	if s.Empty() {
		return nil
	}
	return s.DeepCopy()
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
