package service

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// QemuAgent is what GuestAgentService needs from the QEMU guest agent side. agentd/app adapts
// the QGA poller to it; tests use an in-memory fake (servicefake).
type QemuAgent interface {
	// Run polls until ctx ends.
	Run(ctx context.Context) error
	// Subscribe registers f to be called with a domain's UUID after its data or state changed.
	// f must return quickly.
	Subscribe(f func(uuid string))
	// HandleEvent passes a libvirt event on: domains added/updated (run state, channel state,
	// lifecycle such as a reboot that resets capabilities) and removed (data dropped).
	HandleEvent(ev virt.Event)
	// Info returns a deep copy of the domain's guest data (nil groups: no data).
	Info(uuid string) *guest.Info
	// Stats returns a copy of the domain's metrics-only figures (nil: none). They are read at
	// scrape time only; a change of them is never notified.
	Stats(uuid string) *guest.Stats
	// State returns the agent state of the domain.
	State(uuid string) guest.QGAState
	// Requests.
	Shutdown(ctx context.Context, uuid string, halt bool) error
	Reboot(ctx context.Context, uuid string) error
	// FreezeFilesystems freezes the guest's filesystems (the listed mountpoints, or all) and
	// reports whether the agent says they are frozen: a freeze with nothing to freeze succeeds
	// with frozen false.
	FreezeFilesystems(ctx context.Context, uuid string, mountpoints []string) (frozen bool, err error)
	ThawFilesystems(ctx context.Context, uuid string) error
	SetTime(ctx context.Context, uuid string) error
	Ping(ctx context.Context, uuid string) error
	// SetVCPUs leaves count of the guest's vCPUs online and describes what it changed. A count
	// the guest cannot reach fails without changing anything.
	SetVCPUs(ctx context.Context, uuid string, count int) (string, error)
	// Suspend asks the guest to suspend itself (guest-suspend-ram|hybrid|disk through libvirt).
	Suspend(ctx context.Context, uuid string, mode gav1.SuspendMode) error
}

// OvirtAgent is what GuestAgentService needs from the oVirt guest agent side: one agent per
// domain, served over the domain's socket. agentd/app adapts the oga.Listener to it. Requests to
// a domain that is not served fail with oga.ErrNotConnected.
type OvirtAgent interface {
	// Run serves the sockets until ctx ends.
	Run(ctx context.Context) error
	// Subscribe registers f to be called with a domain's UUID after its data or state changed.
	// f must return quickly.
	Subscribe(f func(uuid string))
	// Serve starts (or keeps) serving a domain's socket. initialAPIVersion seeds the negotiated
	// API version of a domain not served yet.
	Serve(uuid, socketPath string, initialAPIVersion int)
	// Served reports whether the domain's socket is served.
	Served(uuid string) bool
	// Remove stops serving a domain.
	Remove(uuid string)
	// State returns the agent state of a served domain (ok false when it is not served).
	State(uuid string) (st guest.OGAState, ok bool)
	// Info returns a deep copy of the domain's guest data (nil when not served).
	Info(uuid string) *guest.Info
	// Requests.
	Shutdown(ctx context.Context, uuid string, delay time.Duration, message string, reboot bool) error
	LifecycleEvent(ctx context.Context, uuid, hook string, failure, wait bool, timeout time.Duration) error
	LockScreen(ctx context.Context, uuid string) error
	LogOff(ctx context.Context, uuid string) error
	// SetNumberOfCPUs sends set-number-of-cpus and returns the count of the guest's next
	// number-of-cpus report (-1: the guest cannot tell).
	SetNumberOfCPUs(ctx context.Context, uuid string, count int) (int, error)
	// Hibernate sends the hibernate command: state "mem" (suspend to RAM) or "disk".
	Hibernate(ctx context.Context, uuid, state string) error
}

// HostMemory is libvirt's view of each running domain's memory (agentd/memstats): the balloon
// device's statistics and the host-side figures. agentd/app passes a memstats.Poller.
type HostMemory interface {
	// Run polls until ctx ends.
	Run(ctx context.Context) error
	// Subscribe registers f to be called with a domain's UUID after its figures changed.
	Subscribe(f func(uuid string))
	// HandleEvent passes a libvirt event on (stopped and removed domains are forgotten).
	HandleEvent(ev virt.Event)
	// Memory returns a copy of the domain's figures (nil: none) and whether the last read
	// succeeded.
	Memory(uuid string) (*guest.Memory, bool)
}

// LifecycleEvents sends the after_* lifecycle hooks to a domain's oVirt guest agent
// (oga.GuestAgentEvents).
type LifecycleEvents interface {
	AfterMigration(ctx context.Context, uuid string, failed bool) error
	AfterHibernation(ctx context.Context, uuid string, failed bool) error
}

// OvirtAPIVersions returns the negotiated oVirt agent API version persisted for a domain (0 when
// none is), so lifecycle hooks can be sent at once after an agentd restart or a migration. The
// publisher implements it from the domain's GuestAgentStatus.
type OvirtAPIVersions interface {
	OvirtAPIVersion(ctx context.Context, uuid string) (int, error)
}

// PowerButton is libvirt's host-side power control: the ACPI and Destroy steps of power policies.
type PowerButton interface {
	ACPIShutdown(ctx context.Context, uuid string) error
	ACPIReboot(ctx context.Context, uuid string) error
	// Destroy stops the domain: gracefully (SIGTERM) first, then forcibly.
	Destroy(ctx context.Context, uuid string) error
	// Reset resets the domain (the reset button): the guest reboots without a shutdown.
	Reset(ctx context.Context, uuid string) error
}

// DomainVCPUs is libvirt's view of a domain's vCPUs (agentd/virt): how many are plugged in
// (the guest sees only these) and the most the domain can have.
type DomainVCPUs interface {
	VCPUs(ctx context.Context, uuid string) (current, maximum int, err error)
}

// HostSave is libvirt's managed save: the host-side step of a Hibernate.
type HostSave interface {
	// ManagedSave saves the domain's memory to its managed save image and stops it; it returns
	// when the save finished (or failed, the domain then runs on).
	ManagedSave(ctx context.Context, uuid string) error
	// HasManagedSaveImage reports whether libvirt holds a managed save image of the domain.
	HasManagedSaveImage(ctx context.Context, uuid string) (bool, error)
}

// View is everything known about one domain: identity, merged guest data and agent states.
// A View is a deep copy; callers may keep and modify it.
type View struct {
	Domain virt.Domain
	// Info is the merged guest data.
	Info *guest.Info
	// Sources names what supplied each group of Info (for debugging only).
	Sources map[guest.Group]gav1.DataSource
	// Stale marks groups that show the last known value because their source is not responsive.
	Stale map[guest.Group]bool
	QGA   guest.QGAState
	OGA   guest.OGAState
}

// Options configure a GuestAgentService.
type Options struct {
	Log     logr.Logger
	Watcher virt.Watcher
	QGA     QemuAgent
	// OGA is the oVirt guest agent side; nil disables OGA.
	OGA OvirtAgent
	// Memory is libvirt's memory statistics source; nil disables it.
	Memory HostMemory
	// Events sends lifecycle hooks to OGA; nil disables them.
	Events LifecycleEvents
	// PowerButton is the ACPI fallback; nil means no fallback is available.
	PowerButton PowerButton
	// VCPUs checks a SetVCPUs count against the domain's vCPUs before any agent is asked; nil
	// leaves the check to the agents.
	VCPUs DomainVCPUs
	// Save is libvirt's managed save (Hibernate); nil means Hibernate cannot save.
	Save HostSave
	// LifecycleHooks sends after_migration/after_hibernation hooks on libvirt events.
	LifecycleHooks bool
	// OGAVersions seeds the API version of a domain's oVirt agent when the service starts serving
	// it; nil starts every agent at 0.
	OGAVersions OvirtAPIVersions
	// OnChange is called (from one goroutine) with a domain's new View after anything in it
	// changed; OnRemove when a domain is gone from this node (migrated is true when it left by
	// migration: its status is handed over to the destination, not deleted).
	OnChange func(v View)
	OnRemove func(d virt.Domain, migrated bool)
	// HookTimeout bounds lifecycle hook sends (default 30 s).
	HookTimeout time.Duration
	// TimeSync sets the guest clock through the QEMU guest agent after the domain resumes, is
	// restored, migrated in, reverted to a snapshot or wakes up.
	TimeSync bool
	// TimeSyncTimeout bounds the attempts of one time sync (default 60 s).
	TimeSyncTimeout time.Duration
}

// GuestAgentService joins both agents of every domain on the node. Create it with New and run it
// with Run.
type GuestAgentService struct {
	opts Options
	log  logr.Logger

	mu       sync.Mutex
	domains  map[string]virt.Domain
	away     map[string]bool // migrated to another node: not ours to publish
	last     map[string]View // last View handed to OnChange
	dirty    map[string]bool
	removed  map[string]removal
	wake     chan struct{}
	hookWG   sync.WaitGroup
	runCtx   context.Context
	domLocks map[string]map[gav1.AgentType]chan struct{}
	power    watchers[PowerChange]
	changes  watchers[struct{}]

	timeSyncs *prometheus.CounterVec
}

type removal struct {
	d        virt.Domain
	migrated bool
}

// New returns a service; Run starts it.
func New(opts Options) *GuestAgentService {
	if opts.HookTimeout == 0 {
		opts.HookTimeout = 30 * time.Second
	}
	if opts.TimeSyncTimeout == 0 {
		opts.TimeSyncTimeout = time.Minute
	}
	s := &GuestAgentService{
		opts:     opts,
		log:      opts.Log,
		domains:  map[string]virt.Domain{},
		away:     map[string]bool{},
		last:     map[string]View{},
		dirty:    map[string]bool{},
		removed:  map[string]removal{},
		wake:     make(chan struct{}, 1),
		domLocks: map[string]map[gav1.AgentType]chan struct{}{},

		timeSyncs: newTimeSyncCounter(),
	}
	opts.QGA.Subscribe(s.Changed)
	if opts.OGA != nil {
		opts.OGA.Subscribe(s.Changed)
	}
	if opts.Memory != nil {
		opts.Memory.Subscribe(s.Changed)
	}
	return s
}

// Ready reports whether the libvirt connection is up (for the readiness probe).
func (s *GuestAgentService) Ready() bool { return s.opts.Watcher.Connected() }

// Run runs the libvirt watcher, both agents and the change feed until ctx ends.
func (s *GuestAgentService) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
				s.log.Error(err, "Component stopped", "component", name)
			}
		}()
	}
	start("qga", s.opts.QGA.Run)
	if s.opts.OGA != nil {
		start("oga", s.opts.OGA.Run)
	}
	if s.opts.Memory != nil {
		start("memstats", s.opts.Memory.Run)
	}
	start("libvirt", func(ctx context.Context) error { return s.opts.Watcher.Run(ctx, s.handle) })
	s.feed(ctx)
	wg.Wait()
	s.hookWG.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// Changed marks a domain for re-evaluation; the agents call it (the service subscribes to them).
func (s *GuestAgentService) Changed(uuid string) {
	s.mu.Lock()
	s.dirty[uuid] = true
	s.mu.Unlock()
	s.changes.send(uuid, struct{}{})
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// feed hands changed Views to OnChange, one goroutine, coalescing bursts.
func (s *GuestAgentService) feed(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		dirty := s.dirty
		s.dirty = map[string]bool{}
		removed := s.removed
		s.removed = map[string]removal{}
		s.mu.Unlock()
		for uuid, r := range removed {
			if s.opts.OnRemove != nil {
				s.opts.OnRemove(r.d, r.migrated)
			}
			delete(dirty, uuid)
		}
		for uuid := range dirty {
			v, ok := s.View(uuid)
			if !ok {
				continue
			}
			s.mu.Lock()
			prev, had := s.last[uuid]
			changed := !had || !reflect.DeepEqual(prev, v)
			if changed {
				s.last[uuid] = v
			}
			s.mu.Unlock()
			if changed && s.opts.OnChange != nil {
				s.opts.OnChange(v)
			}
		}
	}
}

// Domains returns the UUIDs of the domains this node publishes.
func (s *GuestAgentService) Domains() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.domains))
	for u := range s.domains {
		if !s.away[u] {
			out = append(out, u)
		}
	}
	return out
}

// Stats returns the metrics-only figures of one domain (nil for an unknown domain, one that
// migrated away, or when there are none).
func (s *GuestAgentService) Stats(uuid string) *guest.Stats {
	s.mu.Lock()
	_, ok := s.domains[uuid]
	away := s.away[uuid]
	s.mu.Unlock()
	if !ok || away {
		return nil
	}
	return s.opts.QGA.Stats(uuid)
}

// View returns the merged view of one domain; ok is false for an unknown domain.
func (s *GuestAgentService) View(uuid string) (View, bool) {
	s.mu.Lock()
	d, ok := s.domains[uuid]
	away := s.away[uuid]
	s.mu.Unlock()
	if !ok || away {
		return View{}, false
	}
	v := View{Domain: d, QGA: s.opts.QGA.State(uuid)}
	v.QGA.Present = d.HasQGAChannel
	if !d.State.Active() {
		v.QGA.Responsive = false
		v.QGA.Channel = guest.ChannelDisconnected
	}
	qInfo := s.opts.QGA.Info(uuid)
	var oInfo *guest.Info
	if st, ok := s.ogaState(uuid); ok {
		v.OGA = st
		v.OGA.Present = true
		oInfo = s.opts.OGA.Info(uuid)
	} else if d.OGASocketPath != "" && s.opts.OGA != nil {
		v.OGA = guest.OGAState{Present: true, Channel: guest.ChannelDisconnected}
	}
	hv := sourceData{source: gav1.SourceLibvirt}
	if s.opts.Memory != nil && d.State.Active() {
		if mem, fresh := s.opts.Memory.Memory(uuid); mem != nil {
			hv.info, hv.responsive = &guest.Info{Memory: mem}, fresh
		}
	}
	m := merge(
		// While the filesystems are frozen the agent answers, but cannot refresh its data.
		sourceData{source: gav1.SourceQemu, info: qInfo, responsive: v.QGA.Responsive && v.QGA.FSFreeze != guest.FreezeFrozen},
		sourceData{source: gav1.SourceOvirt, info: oInfo, responsive: v.OGA.Responsive},
		hv,
		v.QGA.Version,
	)
	v.Info, v.Sources, v.Stale = m.info, m.sources, m.stale
	return v, true
}

func (s *GuestAgentService) ogaState(uuid string) (guest.OGAState, bool) {
	if s.opts.OGA == nil {
		return guest.OGAState{}, false
	}
	return s.opts.OGA.State(uuid)
}

// handle applies one libvirt event. It runs on the watcher's goroutine.
func (s *GuestAgentService) handle(ev virt.Event) {
	s.notifyPower(ev)
	switch ev.Type {
	case virt.EventDomainAdded, virt.EventDomainUpdated, virt.EventAgentChannel:
		s.upsert(ev)
	case virt.EventDomainRemoved:
		s.remove(ev.Domain, ev.Lifecycle)
	case virt.EventDeviceChanged:
		s.opts.QGA.HandleEvent(ev) // the poller refreshes filesystems and disks a bit later
	case virt.EventConnectionLost, virt.EventConnectionRestored:
		s.log.Info("Libvirt connection state changed", "event", ev.Type.String())
		s.mu.Lock()
		for u := range s.domains {
			s.dirty[u] = true
		}
		s.mu.Unlock()
		s.Changed("")
	}
}

func (s *GuestAgentService) upsert(ev virt.Event) {
	d := ev.Domain
	s.mu.Lock()
	_, known := s.domains[d.UUID]
	s.domains[d.UUID] = d
	switch ev.Lifecycle {
	case virt.LifecycleMigratedOut:
		s.away[d.UUID] = true
	case virt.LifecycleStarted, virt.LifecycleMigrationStarted, virt.LifecycleMigratedIn, virt.LifecycleRestored,
		virt.LifecycleFromSnapshot, virt.LifecycleDiscovered, virt.LifecycleResynced, virt.LifecycleMigrationFailed:
		if d.State.Active() {
			delete(s.away, d.UUID)
		}
	}
	away := s.away[d.UUID]
	s.mu.Unlock()
	if !known {
		s.log.Info("Domain discovered", "domain", d.Name, "domainUUID", d.UUID, "state", d.State.String())
	}
	if away {
		// The domain runs elsewhere now; stop talking to it and hand publishing over.
		s.opts.QGA.HandleEvent(virt.Event{Type: virt.EventDomainRemoved, Domain: d, Lifecycle: ev.Lifecycle})
		if s.opts.Memory != nil {
			s.opts.Memory.HandleEvent(virt.Event{Type: virt.EventDomainRemoved, Domain: d, Lifecycle: ev.Lifecycle})
		}
		if s.opts.OGA != nil {
			s.opts.OGA.Remove(d.UUID)
		}
		s.mu.Lock()
		s.removed[d.UUID] = removal{d: d, migrated: true}
		delete(s.last, d.UUID)
		s.mu.Unlock()
		s.Changed(d.UUID)
		return
	}
	s.opts.QGA.HandleEvent(ev)
	if s.opts.Memory != nil {
		s.opts.Memory.HandleEvent(ev)
	}
	if s.opts.OGA != nil {
		switch {
		case d.OGASocketPath != "" && d.State.Active():
			version := 0
			if !s.opts.OGA.Served(d.UUID) { // only a new agent needs the persisted version
				version = s.persistedOGAVersion(d.UUID)
			}
			s.opts.OGA.Serve(d.UUID, d.OGASocketPath, version)
		default:
			s.opts.OGA.Remove(d.UUID)
		}
	}
	s.lifecycleHooks(d, ev.Lifecycle)
	s.syncClock(d, ev.Lifecycle)
	s.Changed(d.UUID)
}

// persistedOGAVersion reads the domain's persisted oVirt agent API version; a failed read is
// logged and the agent starts at 0 (it negotiates its version again on the first heartbeat).
func (s *GuestAgentService) persistedOGAVersion(uuid string) int {
	if s.opts.OGAVersions == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), ogaVersionTimeout)
	defer cancel()
	v, err := s.opts.OGAVersions.OvirtAPIVersion(ctx, uuid)
	if err != nil {
		s.log.Error(err, "Cannot read the persisted oVirt agent API version; starting at 0", "domainUUID", uuid)
		return 0
	}
	return v
}

// ogaVersionTimeout bounds the read of a persisted oVirt agent API version.
const ogaVersionTimeout = 10 * time.Second

func (s *GuestAgentService) remove(d virt.Domain, lc virt.Lifecycle) {
	s.mu.Lock()
	last, ok := s.domains[d.UUID]
	delete(s.domains, d.UUID)
	delete(s.away, d.UUID)
	delete(s.last, d.UUID)
	delete(s.domLocks, d.UUID)
	if ok && d.Name == "" {
		d = last
	}
	s.removed[d.UUID] = removal{d: d, migrated: lc == virt.LifecycleMigratedOut}
	s.mu.Unlock()
	s.opts.QGA.HandleEvent(virt.Event{Type: virt.EventDomainRemoved, Domain: d, Lifecycle: lc})
	if s.opts.Memory != nil {
		s.opts.Memory.HandleEvent(virt.Event{Type: virt.EventDomainRemoved, Domain: d, Lifecycle: lc})
	}
	if s.opts.OGA != nil {
		s.opts.OGA.Remove(d.UUID)
	}
	s.log.Info("Domain gone", "domain", d.Name, "domainUUID", d.UUID, "lifecycle", lc.String())
	s.Changed(d.UUID)
}

// lifecycleHooks drives GuestAgentEvents from libvirt lifecycle events: a migration that landed
// here sends after_migration, a migration that failed on this node (the source, where the domain
// runs again) sends after_migration with failure, a restore from a save image sends
// after_hibernation. The before_* hooks cannot be driven by libvirt events (they arrive after the
// fact); they are available as GuestAgentCommand actions for the orchestrator that starts the
// migration or save.
func (s *GuestAgentService) lifecycleHooks(d virt.Domain, lc virt.Lifecycle) {
	if !s.opts.LifecycleHooks || s.opts.Events == nil || d.OGASocketPath == "" {
		return
	}
	var send func(ctx context.Context, uuid string, failed bool) error
	var hook string
	failed := false
	switch lc {
	case virt.LifecycleMigratedIn:
		send, hook = s.opts.Events.AfterMigration, "after_migration"
	case virt.LifecycleMigrationFailed:
		send, hook, failed = s.opts.Events.AfterMigration, "after_migration", true
	case virt.LifecycleRestored:
		send, hook = s.opts.Events.AfterHibernation, "after_hibernation"
	default:
		return
	}
	s.background(func(parent context.Context) {
		ctx, cancel := context.WithTimeout(parent, s.opts.HookTimeout)
		defer cancel()
		if err := send(ctx, d.UUID, failed); err != nil {
			s.log.Info("Lifecycle hook not delivered", "domainUUID", d.UUID, "hook", hook, "failure", failed, "error", err.Error())
			return
		}
		s.log.Info("Lifecycle hook sent", "domainUUID", d.UUID, "hook", hook, "failure", failed)
	})
}

// background runs f in a goroutine bound to the service's run context; Run waits for it.
func (s *GuestAgentService) background(f func(ctx context.Context)) {
	s.mu.Lock()
	parent := s.runCtx
	s.mu.Unlock()
	if parent == nil {
		parent = context.Background()
	}
	s.hookWG.Add(1)
	go func() {
		defer s.hookWG.Done()
		f(parent)
	}()
}

// lockAgent serialises the requests to one agent of one domain. Waiting for the request in
// progress ends with ctx: a call that blocks (libvirt's shutdown through the QEMU guest agent
// waits up to 60 s for the guest) must not hold up the next step of a power policy, which goes
// to another agent or to libvirt and takes no lock.
func (s *GuestAgentService) lockAgent(ctx context.Context, uuid string, a gav1.AgentType) (func(), error) {
	s.mu.Lock()
	m := s.domLocks[uuid]
	if m == nil {
		m = map[gav1.AgentType]chan struct{}{}
		s.domLocks[uuid] = m
	}
	l := m[a]
	if l == nil {
		l = make(chan struct{}, 1)
		m[a] = l
	}
	s.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("another request to the %s is still in progress: %w", a, ctx.Err())
	}
}
