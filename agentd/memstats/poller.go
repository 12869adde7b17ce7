package memstats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// Hypervisor is what a Poller needs from libvirt; *virt.Manager implements it, tests use a fake.
type Hypervisor interface {
	// MemoryStats reads a running domain's memory statistics.
	MemoryStats(uuid string) ([]virt.MemoryStat, error)
	// SetMemoryStatsPeriod sets a running domain's balloon statistics period, live only.
	SetMemoryStatsPeriod(uuid string, seconds int) error
}

// Defaults.
const (
	DefaultPeriod      = 15 * time.Second
	DefaultStatsPeriod = 10
	// MaxStatsPeriod is the largest balloon statistics period accepted (seconds; one day).
	MaxStatsPeriod = 86400
	// defaultWorkers bounds concurrent libvirt calls.
	defaultWorkers = 4
)

// Config configures a Poller.
type Config struct {
	API Hypervisor
	// Domains lists the domains on the node (normally (*virt.Manager).Domains).
	Domains func() []virt.Domain
	// Period is the polling period (default DefaultPeriod).
	Period time.Duration
	// StatsPeriod is the balloon statistics period (seconds) set on running domains whose
	// balloon device has none; 0 never changes a domain.
	StatsPeriod int
	// Workers bounds concurrent libvirt calls (default 4).
	Workers int
	Log     logr.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Poller polls libvirt's memory statistics of every running domain. Create it with New.
type Poller struct {
	cfg Config
	log logr.Logger

	mu   sync.Mutex
	doms map[string]*domainState
	subs []func(uuid string)
}

// domainState is what the poller keeps per domain.
type domainState struct {
	mem *guest.Memory
	// fresh is true while the last read succeeded.
	fresh bool
	// periodSet is true once the statistics period was enabled for the current QEMU process
	// (or found enabled); periodFailed remembers a failure so that it is logged once.
	periodSet    bool
	periodFailed bool
	// lastErr is the last read error's text, for logging transitions only.
	lastErr string
}

// New returns a Poller; Run starts it.
func New(cfg Config) (*Poller, error) {
	if cfg.API == nil || cfg.Domains == nil {
		return nil, errors.New("memstats: API and Domains are required")
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.Period < 0 {
		return nil, fmt.Errorf("memstats: period must be positive, got %s", cfg.Period)
	}
	if err := ValidateStatsPeriod(cfg.StatsPeriod); err != nil {
		return nil, err
	}
	if cfg.Workers <= 0 {
		cfg.Workers = defaultWorkers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Poller{cfg: cfg, log: cfg.Log, doms: map[string]*domainState{}}, nil
}

// ValidateStatsPeriod checks a balloon statistics period (seconds; 0 = never change a domain).
func ValidateStatsPeriod(s int) error {
	if s < 0 || s > MaxStatsPeriod {
		return fmt.Errorf("balloon statistics period must be in [0, %d] seconds (0 leaves domains unchanged), got %d", MaxStatsPeriod, s)
	}
	return nil
}

// Subscribe registers f to be called with a domain's UUID after its memory figures changed.
func (p *Poller) Subscribe(f func(uuid string)) {
	p.mu.Lock()
	p.subs = append(p.subs, f)
	p.mu.Unlock()
}

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Period)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Memory returns a copy of a domain's last memory figures (nil when none) and whether the last
// read succeeded.
func (p *Poller) Memory(uuid string) (*guest.Memory, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.doms[uuid]
	if st == nil || st.mem == nil {
		return nil, false
	}
	m := *st.mem
	return &m, st.fresh
}

// HandleEvent forgets a domain that is gone or stopped, and forgets the statistics period of a
// domain whose QEMU process was (re)started: a live setting ends with its process.
func (p *Poller) HandleEvent(ev virt.Event) {
	uuid := ev.Domain.UUID
	p.mu.Lock()
	st := p.doms[uuid]
	changed := false
	switch {
	case ev.Type == virt.EventDomainRemoved, !ev.Domain.State.Active():
		if st != nil {
			changed = st.mem != nil
			delete(p.doms, uuid)
		}
	case st != nil && restarted(ev.Lifecycle):
		st.periodSet, st.periodFailed = false, false
	}
	p.mu.Unlock()
	if changed {
		p.notify(uuid)
	}
}

// restarted reports whether lc means a new QEMU process for the domain.
func restarted(lc virt.Lifecycle) bool {
	switch lc {
	case virt.LifecycleStarted, virt.LifecycleMigrationStarted, virt.LifecycleMigratedIn, virt.LifecycleRestored,
		virt.LifecycleFromSnapshot, virt.LifecycleResynced:
		return true
	}
	return false
}

// Poll reads every running domain once (bounded concurrency) and notifies subscribers of the
// domains whose figures changed. Domains that are no longer listed or no longer active are
// forgotten.
func (p *Poller) Poll(ctx context.Context) {
	doms := p.cfg.Domains()
	live := make(map[string]bool, len(doms))
	sem := make(chan struct{}, p.cfg.Workers)
	var wg sync.WaitGroup
	for _, d := range doms {
		if !d.State.Active() {
			continue
		}
		live[d.UUID] = true
		if d.State != virt.StateRunning {
			continue // paused/suspended guests do not refresh their figures: keep the last ones
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.pollDomain(d)
		}()
	}
	wg.Wait()
	var gone []string
	p.mu.Lock()
	for uuid, st := range p.doms {
		if !live[uuid] {
			delete(p.doms, uuid)
			if st.mem != nil {
				gone = append(gone, uuid)
			}
		}
	}
	p.mu.Unlock()
	for _, uuid := range gone {
		p.notify(uuid)
	}
}

func (p *Poller) state(uuid string) *domainState {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.doms[uuid]
	if st == nil {
		st = &domainState{}
		p.doms[uuid] = st
	}
	return st
}

// pollDomain enables the statistics period where needed and reads one domain.
func (p *Poller) pollDomain(d virt.Domain) {
	st := p.state(d.UUID)
	p.ensurePeriod(d, st)
	stats, err := p.cfg.API.MemoryStats(d.UUID)
	p.mu.Lock()
	if p.doms[d.UUID] != st { // forgotten meanwhile
		p.mu.Unlock()
		return
	}
	if err != nil {
		msg := err.Error()
		wasFresh := st.fresh
		st.fresh = false
		logIt := msg != st.lastErr
		st.lastErr = msg
		p.mu.Unlock()
		if logIt {
			p.log.Info("Cannot read memory statistics; keeping the last figures", "domain", d.Name, "domainUUID", d.UUID, "error", msg)
		}
		if wasFresh {
			p.notify(d.UUID)
		}
		return
	}
	mem := Translate(stats, p.cfg.Now())
	if mem != nil && d.BalloonStatsPeriod == 0 && !st.periodSet {
		// Without a period the guest-side figures are the snapshot the balloon driver sent
		// when it loaded, never refreshed: only the host-side figures are current.
		mem = hostOnly(mem)
	}
	recovered := st.lastErr != ""
	changed := !st.fresh || !memEqual(st.mem, mem)
	st.mem, st.fresh, st.lastErr = mem, true, ""
	p.mu.Unlock()
	if recovered {
		p.log.Info("Memory statistics readable again", "domain", d.Name, "domainUUID", d.UUID)
	}
	if changed {
		p.notify(d.UUID)
	}
}

// ensurePeriod sets the balloon statistics period of a domain whose balloon device has none,
// once per QEMU process.
func (p *Poller) ensurePeriod(d virt.Domain, st *domainState) {
	want := p.cfg.StatsPeriod
	p.mu.Lock()
	skip := want == 0 || !d.Balloon || st.periodSet || st.periodFailed
	if !skip && d.BalloonStatsPeriod > 0 {
		st.periodSet = true // the domain polls its balloon already: leave its setting alone
		skip = true
	}
	p.mu.Unlock()
	if skip {
		return
	}
	err := p.cfg.API.SetMemoryStatsPeriod(d.UUID, want)
	p.mu.Lock()
	if err != nil {
		st.periodFailed = true
	} else {
		st.periodSet = true
	}
	p.mu.Unlock()
	if err != nil {
		p.log.Info("Cannot enable the balloon statistics period; only host-side memory figures", "domain", d.Name,
			"domainUUID", d.UUID, "periodSeconds", want, "error", err.Error())
		return
	}
	p.log.Info("Enabled the balloon statistics period (live only)", "domain", d.Name, "domainUUID", d.UUID, "periodSeconds", want)
}

// hostOnly keeps the host-side figures of m (balloon size, QEMU RSS), or nil when there are none.
func hostOnly(m *guest.Memory) *guest.Memory {
	if m.BalloonBytes == 0 && m.HostRSSBytes == 0 {
		return nil
	}
	return &guest.Memory{BalloonBytes: m.BalloonBytes, HostRSSBytes: m.HostRSSBytes}
}

func memEqual(a, b *guest.Memory) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (p *Poller) notify(uuid string) {
	p.mu.Lock()
	subs := append([]func(string){}, p.subs...)
	p.mu.Unlock()
	for _, f := range subs {
		f(uuid)
	}
}
