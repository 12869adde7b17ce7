package virt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"libvirt.org/go/libvirt"

	"guestagent.io/operator/agentd/guest"
)

// DefaultURI is the libvirt connection URI agentd uses unless configured otherwise.
const DefaultURI = "qemu:///system"

// ErrNotConnected is returned by calls that need the libvirt connection while it is down.
var ErrNotConnected = errors.New("libvirt connection is not open")

// Config configures a Manager. Zero values take the documented defaults.
type Config struct {
	// URI is the libvirt URI (default DefaultURI). test:///abs/path.xml works for tests.
	URI string
	// KeepAliveInterval and KeepAliveCount configure libvirt keepalive (default 5 s × 3): a
	// libvirtd that stops answering is detected within about interval×(count+1).
	KeepAliveInterval time.Duration
	KeepAliveCount    uint
	// ReconnectMin and ReconnectMax bound the exponential reconnect backoff (default 500 ms, 30 s).
	ReconnectMin, ReconnectMax time.Duration
	// ResyncInterval is the period of the reconciliation re-listing that catches missed events
	// (default 60 s; negative disables it).
	ResyncInterval time.Duration
	// AliveCheckInterval is how often IsAlive is checked in addition to the close callback
	// (default 2 s).
	AliveCheckInterval time.Duration
	// MigrationJobCheckInterval is how often the job of a domain migrating out is checked; a job
	// that ended with the domain still running here is a failed migration (default 1 s).
	MigrationJobCheckInterval time.Duration
	// Log receives state transitions (connect, disconnect, domain add/remove, channel changes).
	Log logr.Logger
}

func (c *Config) defaults() {
	if c.URI == "" {
		c.URI = DefaultURI
	}
	if c.KeepAliveInterval <= 0 {
		c.KeepAliveInterval = 5 * time.Second
	}
	if c.KeepAliveCount == 0 {
		c.KeepAliveCount = 3
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 500 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 30 * time.Second
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 60 * time.Second
	}
	if c.AliveCheckInterval <= 0 {
		c.AliveCheckInterval = 2 * time.Second
	}
	if c.MigrationJobCheckInterval <= 0 {
		c.MigrationJobCheckInterval = time.Second
	}
}

// Manager is the libvirt implementation of Watcher: one connection with keepalive, reconnect with
// backoff, event callbacks, discovery and periodic resync. Create it with NewManager.
type Manager struct {
	cfg Config
	log logr.Logger

	connected atomic.Bool
	synced    atomic.Bool   // the listing after the current connection was delivered
	gen       atomic.Uint64 // generation of the current connection (events of older ones are dropped)
	running   atomic.Bool

	mu      sync.Mutex
	conn    *libvirt.Connect
	domains map[string]*entry

	qmu    sync.Mutex
	queue  []rawEvent
	notify chan struct{}

	// job watchers of outgoing migrations (migration.go); the watch* fields are guarded by mu
	jobActive func(conn *libvirt.Connect, uuid string) (bool, error)
	jobWG     sync.WaitGroup
	watchCtx  context.Context
	watchConn *libvirt.Connect
	watchGen  uint64
}

type entry struct {
	d Domain
	// chanFromEvent is true once an AGENT_LIFECYCLE event set the channel state; the XML hint
	// is then ignored until the domain restarts or the connection is re-opened.
	chanFromEvent bool
	// mig is what this host knows about a migration of the domain.
	mig migState
}

type rawKind int

const (
	rawLifecycle rawKind = iota
	rawAgent
	rawReboot
	rawMetadata
	rawDeviceAdded
	rawDeviceRemoved
	rawClosed
	rawMigIteration // MIGRATION_ITERATION: a pass of an outgoing migration
	rawJobCompleted // JOB_COMPLETED: a job (e.g. an outgoing migration) completed
	rawJobEnded     // a job watcher saw no active job any more
)

type rawEvent struct {
	kind   rawKind
	gen    uint64
	uuid   string
	name   string
	event  libvirt.DomainEventType
	detail int
	agent  libvirt.ConnectDomainEventAgentLifecycleState
	alias  string // device events
}

// NewManager returns a Manager; nothing happens until Run.
func NewManager(cfg Config) *Manager {
	cfg.defaults()
	return &Manager{cfg: cfg, log: cfg.Log, domains: map[string]*entry{}, notify: make(chan struct{}, 1), jobActive: libvirtJobActive}
}

var _ Watcher = (*Manager)(nil)

var (
	eventLoopOnce sync.Once
	eventLoopErr  error
)

// EnsureEventLoop registers libvirt's default event implementation (once per process) and
// starts the goroutine that runs it (runEventLoop; it lives as long as the process, so tests
// using goleak should ignore "guestagent.io/operator/agentd/virt.runEventLoop"). It must run
// before any connection that wants events or keepalive is opened; Manager.Run calls it.
func EnsureEventLoop() error {
	eventLoopOnce.Do(func() {
		if err := libvirt.EventRegisterDefaultImpl(); err != nil {
			eventLoopErr = fmt.Errorf("register libvirt default event loop: %w", err)
			return
		}
		go runEventLoop()
	})
	return eventLoopErr
}

func runEventLoop() {
	for {
		if err := libvirt.EventRunDefaultImpl(); err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Connected reports whether the connection is open with all callbacks registered.
func (m *Manager) Connected() bool { return m.connected.Load() }

// Synced implements Watcher.
func (m *Manager) Synced() bool { return m.synced.Load() }

// Domains returns snapshots of all known domains.
func (m *Manager) Domains() []Domain {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Domain, 0, len(m.domains))
	for _, e := range m.domains {
		out = append(out, e.d)
	}
	return out
}

// Domain returns the snapshot of one domain.
func (m *Manager) Domain(uuid string) (Domain, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.domains[uuid]
	if !ok {
		return Domain{}, false
	}
	return e.d, true
}

// LookupDomain returns a libvirt handle for the domain on the current connection. The caller
// must Free it. It fails with ErrNotConnected while the connection is down. agentd/qga uses it.
func (m *Manager) LookupDomain(uuid string) (*libvirt.Domain, error) {
	m.mu.Lock()
	conn := m.conn
	m.mu.Unlock()
	if conn == nil || !m.connected.Load() {
		return nil, ErrNotConnected
	}
	callsLookup.Inc()
	d, err := conn.LookupDomainByUUIDString(uuid)
	if err != nil {
		return nil, fmt.Errorf("lookup domain %s: %w", uuid, err)
	}
	return d, nil
}

func (m *Manager) push(ev rawEvent) {
	m.qmu.Lock()
	m.queue = append(m.queue, ev)
	m.qmu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *Manager) drain() []rawEvent {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	q := m.queue
	m.queue = nil
	return q
}

// Run implements Watcher.
func (m *Manager) Run(ctx context.Context, h Handler) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("virt: Manager.Run called twice")
	}
	if err := EnsureEventLoop(); err != nil {
		return err
	}
	var gen uint64
	backoff := m.cfg.ReconnectMin
	first := true
	failing := false
	for ctx.Err() == nil {
		gen++
		conn, ids, err := m.open(gen)
		if err != nil {
			if !failing {
				m.log.Info("Libvirt connection failed; retrying with backoff", "uri", m.cfg.URI, "error", err.Error())
				failing = true
			}
			if !sleepCtx(ctx, backoff) {
				break
			}
			backoff = min(backoff*2, m.cfg.ReconnectMax)
			continue
		}
		failing = false
		backoff = m.cfg.ReconnectMin
		m.mu.Lock()
		m.conn = conn
		m.mu.Unlock()
		m.drain() // events of older connections are meaningless now
		m.gen.Store(gen)
		m.connected.Store(true)
		if first {
			m.log.Info("Libvirt connected", "uri", m.cfg.URI)
		} else {
			m.log.Info("Libvirt connection restored", "uri", m.cfg.URI)
			h(Event{Type: EventConnectionRestored, Reason: "reconnected"})
		}
		lc := LifecycleResynced
		if first {
			lc = LifecycleDiscovered
		}
		first = false
		if err := m.resync(conn, h, lc, true); err != nil {
			m.log.Info("Libvirt listing failed after connect", "error", err.Error())
		}
		m.synced.Store(true)
		m.serve(ctx, conn, gen, h)

		m.synced.Store(false)
		m.connected.Store(false)
		m.mu.Lock()
		m.conn = nil
		m.mu.Unlock()
		m.close(conn, ids)
		if ctx.Err() != nil {
			break
		}
		m.log.Info("Libvirt connection lost; reconnecting", "uri", m.cfg.URI)
		h(Event{Type: EventConnectionLost, Reason: "connection closed"})
		if !sleepCtx(ctx, backoff) {
			break
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// open connects and registers keepalive, the close callback and all event callbacks.
func (m *Manager) open(gen uint64) (*libvirt.Connect, []int, error) {
	conn, err := libvirt.NewConnect(m.cfg.URI)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", m.cfg.URI, err)
	}
	// Keepalive is only meaningful (and only supported) on remote-protocol connections; the
	// test:/// driver rejects it, which is fine.
	if err := conn.SetKeepAlive(int(m.cfg.KeepAliveInterval/time.Second), m.cfg.KeepAliveCount); err != nil {
		m.log.V(1).Info("Keepalive not enabled", "error", err.Error())
	}
	if err := conn.RegisterCloseCallback(func(_ *libvirt.Connect, reason libvirt.ConnectCloseReason) {
		m.push(rawEvent{kind: rawClosed, gen: gen, detail: int(reason)})
	}); err != nil {
		m.log.V(1).Info("Close callback not registered", "error", err.Error())
	}
	var ids []int
	fail := func(what string, err error) (*libvirt.Connect, []int, error) {
		m.close(conn, ids)
		return nil, nil, fmt.Errorf("register %s events: %w", what, err)
	}
	id, err := conn.DomainEventLifecycleRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventLifecycle) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawLifecycle, gen: gen, uuid: u, name: n, event: ev.Event, detail: ev.Detail})
	})
	if err != nil {
		return fail("lifecycle", err)
	}
	ids = append(ids, id)
	id, err = conn.DomainEventAgentLifecycleRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventAgentLifecycle) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawAgent, gen: gen, uuid: u, name: n, agent: ev.State, detail: int(ev.Reason)})
	})
	if err != nil {
		return fail("agent lifecycle", err)
	}
	ids = append(ids, id)
	id, err = conn.DomainEventRebootRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawReboot, gen: gen, uuid: u, name: n})
	})
	if err != nil {
		return fail("reboot", err)
	}
	ids = append(ids, id)
	id, err = conn.DomainEventMetadataChangeRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, _ *libvirt.DomainEventMetadataChange) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawMetadata, gen: gen, uuid: u, name: n})
	})
	if err != nil {
		return fail("metadata change", err)
	}
	ids = append(ids, id)
	id, err = conn.DomainEventDeviceAddedRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventDeviceAdded) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawDeviceAdded, gen: gen, uuid: u, name: n, alias: ev.DevAlias})
	})
	if err != nil {
		return fail("device added", err)
	}
	ids = append(ids, id)
	id, err = conn.DomainEventDeviceRemovedRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventDeviceRemoved) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawDeviceRemoved, gen: gen, uuid: u, name: n, alias: ev.DevAlias})
	})
	if err != nil {
		return fail("device removed", err)
	}
	ids = append(ids, id)
	// Migration progress and job completion tell a migration source that it is one, and when its
	// job ended (migration.go); without them a failure while running is only found by a resync.
	if id, err = conn.DomainEventMigrationIterationRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, _ *libvirt.DomainEventMigrationIteration) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawMigIteration, gen: gen, uuid: u, name: n})
	}); err != nil {
		m.log.Info("Migration iteration events not registered", "error", err.Error())
	} else {
		ids = append(ids, id)
	}
	if id, err = conn.DomainEventJobCompletedRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, _ *libvirt.DomainEventJobCompleted) {
		u, n := domIdent(d)
		m.push(rawEvent{kind: rawJobCompleted, gen: gen, uuid: u, name: n})
	}); err != nil {
		m.log.Info("Job completed events not registered", "error", err.Error())
	} else {
		ids = append(ids, id)
	}
	return conn, ids, nil
}

func domIdent(d *libvirt.Domain) (string, string) {
	u, _ := d.GetUUIDString()
	n, _ := d.GetName()
	return u, n
}

func (m *Manager) close(conn *libvirt.Connect, ids []int) {
	for _, id := range ids {
		_ = conn.DomainEventDeregister(id) // fails harmlessly on a dead connection
	}
	_ = conn.UnregisterCloseCallback()
	_, _ = conn.Close()
}

// serve processes events until the connection dies or ctx is done.
func (m *Manager) serve(ctx context.Context, conn *libvirt.Connect, gen uint64, h Handler) {
	alive := time.NewTicker(m.cfg.AliveCheckInterval)
	defer alive.Stop()
	wctx, wcancel := context.WithCancel(ctx)
	m.setWatchContext(wctx, conn, gen)
	defer func() {
		wcancel()
		m.jobWG.Wait()
		m.setWatchContext(context.TODO(), nil, 0) // no connection: job watchers stop
	}()
	m.startWatchers()
	var resync <-chan time.Time
	if m.cfg.ResyncInterval > 0 {
		t := time.NewTicker(m.cfg.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-alive.C:
			if ok, err := conn.IsAlive(); err != nil || !ok {
				return
			}
		case <-resync:
			if err := m.resync(conn, h, LifecycleResynced, false); err != nil {
				m.log.V(1).Info("Periodic resync failed", "error", err.Error())
				if ok, aerr := conn.IsAlive(); aerr != nil || !ok {
					return
				}
			}
			m.startWatchers()
		case <-m.notify:
			for _, ev := range m.drain() {
				if ev.gen != gen {
					continue
				}
				if ev.kind == rawClosed {
					return
				}
				m.handleRaw(conn, ev, h)
			}
		}
	}
}

func (m *Manager) handleRaw(conn *libvirt.Connect, ev rawEvent, h Handler) {
	m.log.V(2).Info("Libvirt event", "kind", int(ev.kind), "domain", ev.name, "event", int(ev.event), "detail", ev.detail, "agent", int(ev.agent))
	switch ev.kind {
	case rawAgent:
		var st guest.ChannelState
		switch ev.agent {
		case libvirt.CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED:
			st = guest.ChannelConnected
		case libvirt.CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED:
			st = guest.ChannelDisconnected
		default:
			m.log.V(1).Info("Ignoring agent lifecycle event with unknown state", "domain", ev.name, "state", int(ev.agent))
			return
		}
		m.mu.Lock()
		e, known := m.domains[ev.uuid]
		m.mu.Unlock()
		if !known {
			m.refresh(conn, ev.uuid, LifecycleNone, "agent event for unknown domain", h)
			m.mu.Lock()
			e, known = m.domains[ev.uuid]
			m.mu.Unlock()
			if !known {
				return
			}
		}
		m.mu.Lock()
		e.chanFromEvent = true
		changed := e.d.QGAChannel != st
		e.d.QGAChannel = st
		snap := e.d
		m.mu.Unlock()
		if changed {
			m.log.Info("QEMU guest agent channel changed", "domain", snap.Name, "domainUUID", snap.UUID, "state", string(st))
			h(Event{Type: EventAgentChannel, Domain: snap, Reason: "libvirt AGENT_LIFECYCLE"})
		}
	case rawReboot:
		m.refresh(conn, ev.uuid, LifecycleRebooted, "libvirt REBOOT", h)
	case rawMetadata:
		m.refresh(conn, ev.uuid, LifecycleMetadataChanged, "libvirt METADATA_CHANGE", h)
	case rawDeviceAdded, rawDeviceRemoved:
		m.mu.Lock()
		e, known := m.domains[ev.uuid]
		var snap Domain
		if known {
			snap = e.d
		}
		m.mu.Unlock()
		if out, ok := deviceEvent(ev.kind, snap, known, ev.alias); ok {
			m.log.Info("Domain device hot(un)plugged", "domain", snap.Name, "domainUUID", snap.UUID, "event", out.Lifecycle.String(), "device", out.Device)
			h(out)
		}
	case rawMigIteration:
		m.handleIteration(conn, ev, h)
	case rawJobCompleted, rawJobEnded:
		m.handleJobEnded(conn, ev, h)
	case rawLifecycle:
		lc, reason := mapLifecycle(ev.event, ev.detail)
		if ev.event == libvirt.DOMAIN_EVENT_STARTED || ev.event == libvirt.DOMAIN_EVENT_STOPPED {
			// A new (or no) QEMU process: whatever agent events said before is void.
			m.mu.Lock()
			if e, ok := m.domains[ev.uuid]; ok {
				e.chanFromEvent = false
				e.d.QGAChannel = guest.ChannelUnknown
			}
			m.mu.Unlock()
		}
		m.refreshLifecycle(conn, ev, lc, reason, h)
	}
}

// deviceEvent maps a DEVICE_ADDED/DEVICE_REMOVED event of a domain (known: in the table, with
// snapshot snap) to the Event handed on; false when there is none to hand on (an unknown domain:
// its discovery polls everything anyway).
func deviceEvent(kind rawKind, snap Domain, known bool, alias string) (Event, bool) {
	if !known {
		return Event{}, false
	}
	out := Event{Type: EventDeviceChanged, Domain: snap, Device: alias}
	switch kind {
	case rawDeviceAdded:
		out.Lifecycle, out.Reason = LifecycleDeviceAdded, "libvirt DEVICE_ADDED"
	case rawDeviceRemoved:
		out.Lifecycle, out.Reason = LifecycleDeviceRemoved, "libvirt DEVICE_REMOVED"
	default:
		return Event{}, false
	}
	return out, true
}

// snapshot reads one domain from libvirt.
func snapshot(d *libvirt.Domain) (Domain, error) {
	var out Domain
	var err error
	if out.UUID, err = d.GetUUIDString(); err != nil {
		return out, err
	}
	if out.Name, err = d.GetName(); err != nil {
		return out, err
	}
	callsState.Inc()
	st, reason, err := d.GetState()
	if err != nil {
		return out, err
	}
	out.State = mapState(st)
	out.StateReason = stateReason(st, reason)
	callsPersistent.Inc()
	if out.Persistent, err = d.IsPersistent(); err != nil {
		return out, err
	}
	callsXML.Inc()
	x, err := d.GetXMLDesc(0)
	if err != nil {
		return out, err
	}
	xi, err := ParseDomainXML(x)
	if err != nil {
		return out, err
	}
	out.HasQGAChannel = xi.HasQGAChannel
	out.QGAChannelHint = xi.QGAChannelHint
	out.OGASocketPath, out.OGAChannelName = xi.OGASocketPath, xi.OGAChannelName
	out.Placement = xi.Placement
	out.Balloon, out.BalloonStatsPeriod = xi.Balloon, xi.BalloonStatsPeriod
	out.QGAChannel = guest.ChannelUnknown
	return out, nil
}

func isNoDomain(err error) bool {
	var le libvirt.Error
	return errors.As(err, &le) && le.Code == libvirt.ERR_NO_DOMAIN
}

// refresh re-reads one domain and emits Added/Updated/Removed (+AgentChannel) as needed.
func (m *Manager) refresh(conn *libvirt.Connect, uuid string, lc Lifecycle, reason string, h Handler) {
	callsLookup.Inc()
	d, err := conn.LookupDomainByUUIDString(uuid)
	var snap Domain
	if err == nil {
		snap, err = snapshot(d)
		_ = d.Free()
	}
	if err != nil {
		if isNoDomain(err) {
			m.remove(uuid, lc, reason, h)
			return
		}
		m.log.V(1).Info("Reading domain failed", "domainUUID", uuid, "error", err.Error())
		return
	}
	m.upsert(snap, lc, reason, false, h)
}

// upsert merges a fresh snapshot into the table and emits the events it implies.
func (m *Manager) upsert(snap Domain, lc Lifecycle, reason string, resetChannel bool, h Handler) {
	m.mu.Lock()
	e, known := m.domains[snap.UUID]
	if !known {
		e = &entry{}
		m.domains[snap.UUID] = e
	}
	old := e.d
	if resetChannel || !snap.State.Active() {
		e.chanFromEvent = false
		old.QGAChannel = guest.ChannelUnknown
	}
	if known {
		snap.QGAChannel = old.QGAChannel
	}
	if !e.chanFromEvent && snap.State.Active() {
		// bootstrap: the XML hint is accepted only while no event has told us better
		snap.QGAChannel = snap.QGAChannelHint
	} else if !snap.State.Active() {
		snap.QGAChannel = guest.ChannelUnknown
	}
	e.d = snap
	m.mu.Unlock()

	switch {
	case !known:
		m.log.Info("Domain added", "domain", snap.Name, "domainUUID", snap.UUID, "state", snap.State.String(), "lifecycle", lc.String())
		h(Event{Type: EventDomainAdded, Domain: snap, Lifecycle: lc, Reason: reason})
	default:
		chanChanged := old.QGAChannel != snap.QGAChannel
		old.QGAChannel = snap.QGAChannel
		otherChanged := old != snap
		if otherChanged || (lc != LifecycleNone && lc != LifecycleResynced) || (resetChannel && lc == LifecycleResynced) {
			if old.State != snap.State {
				m.log.Info("Domain state changed", "domain", snap.Name, "domainUUID", snap.UUID, "state", snap.State.String(), "lifecycle", lc.String())
			}
			h(Event{Type: EventDomainUpdated, Domain: snap, Lifecycle: lc, Reason: reason})
		}
		if chanChanged {
			m.log.Info("QEMU guest agent channel changed", "domain", snap.Name, "domainUUID", snap.UUID, "state", string(snap.QGAChannel), "source", "xml")
			h(Event{Type: EventAgentChannel, Domain: snap, Reason: "domain XML"})
		}
	}
}

func (m *Manager) remove(uuid string, lc Lifecycle, reason string, h Handler) {
	m.mu.Lock()
	e, ok := m.domains[uuid]
	delete(m.domains, uuid)
	m.mu.Unlock()
	if !ok {
		return
	}
	snap := e.d
	if lc == LifecycleStopped || lc == LifecycleSaved || lc == LifecycleMigratedOut || lc == LifecycleCrashed {
		snap.State = StateShutOff
	}
	snap.QGAChannel = guest.ChannelUnknown
	m.log.Info("Domain removed", "domain", snap.Name, "domainUUID", uuid, "lifecycle", lc.String())
	h(Event{Type: EventDomainRemoved, Domain: snap, Lifecycle: lc, Reason: reason})
}

// resync lists all domains and reconciles the table with them.
func (m *Manager) resync(conn *libvirt.Connect, h Handler, lc Lifecycle, resetChannels bool) error {
	callsList.Inc()
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		return fmt.Errorf("list domains: %w", err)
	}
	seen := make(map[string]bool, len(doms))
	snaps := make([]Domain, 0, len(doms))
	for i := range doms {
		s, err := snapshot(&doms[i])
		_ = doms[i].Free()
		if err != nil {
			if !isNoDomain(err) {
				m.log.V(1).Info("Reading domain failed during listing", "error", err.Error())
			}
			// the domain may have vanished between list and read; a later event/resync fixes it
			if s.UUID != "" {
				seen[s.UUID] = true
			}
			continue
		}
		seen[s.UUID] = true
		snaps = append(snaps, s)
	}
	for _, s := range snaps {
		m.upsert(s, lc, "libvirt listing", resetChannels, h)
	}
	m.mu.Lock()
	var gone []string
	for u := range m.domains {
		if !seen[u] {
			gone = append(gone, u)
		}
	}
	m.mu.Unlock()
	for _, u := range gone {
		m.remove(u, lc, "absent from libvirt listing", h)
	}
	return nil
}

func mapState(s libvirt.DomainState) State {
	switch s {
	case libvirt.DOMAIN_RUNNING, libvirt.DOMAIN_BLOCKED:
		return StateRunning
	case libvirt.DOMAIN_PAUSED:
		return StatePaused
	case libvirt.DOMAIN_SHUTDOWN:
		return StateShuttingDown
	case libvirt.DOMAIN_SHUTOFF:
		return StateShutOff
	case libvirt.DOMAIN_CRASHED:
		return StateCrashed
	case libvirt.DOMAIN_PMSUSPENDED:
		return StatePMSuspended
	}
	return StateUnknown
}

// stateReasons names libvirt's state reasons per state, indexed by the reason number.
var stateReasons = map[libvirt.DomainState][]string{
	libvirt.DOMAIN_RUNNING: {"Unknown", "Booted", "Migrated", "Restored", "FromSnapshot", "Unpaused",
		"MigrationCanceled", "SaveCanceled", "Wakeup", "Crashed", "PostCopy", "PostCopyFailed"},
	libvirt.DOMAIN_PAUSED: {"Unknown", "User", "Migration", "Save", "Dump", "IOError", "Watchdog", "FromSnapshot",
		"ShuttingDown", "Snapshot", "Crashed", "StartingUp", "PostCopy", "PostCopyFailed", "APIError"},
	libvirt.DOMAIN_SHUTDOWN: {"Unknown", "User"},
	libvirt.DOMAIN_SHUTOFF: {"Unknown", "Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed",
		"FromSnapshot", "Daemon"},
	libvirt.DOMAIN_CRASHED: {"Unknown", "Panicked"},
}

// stateReason names libvirt's reason for a domain state.
func stateReason(s libvirt.DomainState, reason int) string {
	names := stateReasons[s]
	if reason < 0 || reason >= len(names) {
		return "Unknown"
	}
	return names[reason]
}

var eventTypeNames = map[libvirt.DomainEventType]string{
	libvirt.DOMAIN_EVENT_DEFINED: "DEFINED", libvirt.DOMAIN_EVENT_UNDEFINED: "UNDEFINED",
	libvirt.DOMAIN_EVENT_STARTED: "STARTED", libvirt.DOMAIN_EVENT_SUSPENDED: "SUSPENDED",
	libvirt.DOMAIN_EVENT_RESUMED: "RESUMED", libvirt.DOMAIN_EVENT_STOPPED: "STOPPED",
	libvirt.DOMAIN_EVENT_SHUTDOWN: "SHUTDOWN", libvirt.DOMAIN_EVENT_PMSUSPENDED: "PMSUSPENDED",
	libvirt.DOMAIN_EVENT_CRASHED: "CRASHED",
}

// mapLifecycle maps a libvirt lifecycle (event, detail) to our Lifecycle.
func mapLifecycle(ev libvirt.DomainEventType, detail int) (Lifecycle, string) {
	reason := fmt.Sprintf("libvirt %s/%d", eventTypeNames[ev], detail)
	switch ev {
	case libvirt.DOMAIN_EVENT_DEFINED:
		return LifecycleDefined, reason
	case libvirt.DOMAIN_EVENT_UNDEFINED:
		return LifecycleUndefined, reason
	case libvirt.DOMAIN_EVENT_STARTED:
		switch libvirt.DomainEventStartedDetailType(detail) {
		case libvirt.DOMAIN_EVENT_STARTED_MIGRATED:
			return LifecycleMigrationStarted, reason
		case libvirt.DOMAIN_EVENT_STARTED_RESTORED:
			return LifecycleRestored, reason
		case libvirt.DOMAIN_EVENT_STARTED_FROM_SNAPSHOT:
			return LifecycleFromSnapshot, reason
		case libvirt.DOMAIN_EVENT_STARTED_WAKEUP:
			return LifecycleWokeUp, reason
		}
		return LifecycleStarted, reason
	case libvirt.DOMAIN_EVENT_SUSPENDED:
		switch libvirt.DomainEventSuspendedDetailType(detail) {
		case libvirt.DOMAIN_EVENT_SUSPENDED_MIGRATED, libvirt.DOMAIN_EVENT_SUSPENDED_POSTCOPY:
			return LifecycleMigrationPaused, reason
		}
		return LifecycleSuspended, reason
	case libvirt.DOMAIN_EVENT_RESUMED:
		switch libvirt.DomainEventResumedDetailType(detail) {
		case libvirt.DOMAIN_EVENT_RESUMED_MIGRATED, libvirt.DOMAIN_EVENT_RESUMED_POSTCOPY:
			return LifecycleMigratedIn, reason
		}
		return LifecycleResumed, reason
	case libvirt.DOMAIN_EVENT_STOPPED:
		switch libvirt.DomainEventStoppedDetailType(detail) {
		case libvirt.DOMAIN_EVENT_STOPPED_SAVED:
			return LifecycleSaved, reason
		case libvirt.DOMAIN_EVENT_STOPPED_MIGRATED:
			return LifecycleMigratedOut, reason
		case libvirt.DOMAIN_EVENT_STOPPED_CRASHED:
			return LifecycleCrashed, reason
		}
		return LifecycleStopped, reason
	case libvirt.DOMAIN_EVENT_SHUTDOWN:
		return LifecycleShuttingDown, reason
	case libvirt.DOMAIN_EVENT_PMSUSPENDED:
		return LifecyclePMSuspended, reason
	case libvirt.DOMAIN_EVENT_CRASHED:
		return LifecycleCrashed, reason
	}
	return LifecycleNone, reason
}
