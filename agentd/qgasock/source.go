// Package qgasock discovers the domains that libvirt does not run (plain QEMU, other launchers)
// from their QEMU guest agent sockets, and implements virt.Watcher for them so the rest of
// agentd (poller, service, publisher, executor) serves them like libvirt domains.
//
// Domains come from a configured list (name, UUID, socket path: the domain exists as long as it
// is configured) and/or a directory of sockets named <name>_<uuid>.sock (the domain exists while
// its socket file does; the name may contain '_', the UUID is the canonical 8-4-4-4-12 form
// before ".sock"). A list entry wins over a directory socket with the same UUID.
//
// Every Interval the directory is scanned and every socket probed through a Prober
// (qga.SocketAPI: connect if needed, then the agent must answer guest-sync on the connection the
// poller uses too, since an agent serves one client at a time; an answer to one of the poller's
// calls within the last Interval counts as the probe). Channel state is Connected while
// the probe succeeds, else Disconnected. There is no libvirt run state: a domain is Running
// while its agent answers and Unknown otherwise, both with StateReason GuestAgentSocket. Only
// transitions are logged. Probes run concurrently (bounded), each within its timeout, so a
// socket whose peer hangs or sends garbage delays no other domain.
package qgasock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// StateReason is the virt.Domain.StateReason of every socket domain: its run state is inferred
// from the agent socket, not reported by libvirt.
const StateReason = "GuestAgentSocket"

// Prober checks a domain's agent over its socket (qga.SocketAPI implements it).
type Prober interface {
	// Probe returns nil when the agent answered at or after since (zero: ask it now), or
	// answers within timeout.
	Probe(ctx context.Context, uuid string, timeout time.Duration, since time.Time) error
	// Forget drops what is kept for a domain that is gone (its connection).
	Forget(uuid string)
}

// Entry is one configured socket domain.
type Entry struct {
	Name, UUID, Socket string
}

// Config configures a Source.
type Config struct {
	// Directory of <name>_<uuid>.sock sockets ("" for none).
	Directory string
	// Domains are the configured domains (UUIDs in any case; validated by agentd/config).
	Domains []Entry
	// Interval between scans and probes (default 30 s).
	Interval time.Duration
	// ProbeTimeout bounds one probe (default 1 s).
	ProbeTimeout time.Duration
	// Parallel bounds concurrent probes (default 16).
	Parallel int
	// Prober is required.
	Prober Prober
	Log    logr.Logger
}

// Source is a virt.Watcher of socket domains. Create it with New.
type Source struct {
	cfg    Config
	log    logr.Logger
	static []Entry

	mu      sync.Mutex
	domains map[string]virt.Domain
	pending map[string]string // UUID → socket of the current round's domains
	bad     map[string]bool   // directory entries that are not <name>_<uuid>.sock sockets (logged once)
	dups    map[string]bool   // sockets hidden by another with the same UUID (logged once)
	dirErr  string
	synced  atomic.Bool
	started atomic.Bool
}

var _ virt.Watcher = (*Source)(nil)

// New returns a Source; Run starts it.
func New(cfg Config) (*Source, error) {
	if cfg.Prober == nil {
		return nil, errors.New("qgasock: Config.Prober is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = time.Second
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	s := &Source{cfg: cfg, log: cfg.Log, domains: map[string]virt.Domain{}, pending: map[string]string{},
		bad: map[string]bool{}, dups: map[string]bool{}}
	for i, e := range cfg.Domains {
		u, ok := config.CanonicalUUID(e.UUID)
		if !ok || e.Name == "" || e.Socket == "" {
			return nil, fmt.Errorf("qgasock: domain %d (%q, %q, %q): name, UUID and socket are required", i, e.Name, e.UUID, e.Socket)
		}
		e.UUID = u
		s.static = append(s.static, e)
	}
	return s, nil
}

// SocketPath returns the socket of a known domain (qga.SocketAPI's Path).
func (s *Source) SocketPath(uuid string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pending[uuid]; ok {
		return p, true
	}
	d, ok := s.domains[uuid]
	return d.QGASocket, ok
}

// Run implements virt.Watcher: scan, probe and deliver every Interval until ctx ends.
func (s *Source) Run(ctx context.Context, h virt.Handler) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("qgasock: Run called twice")
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.round(ctx, h)
		if ctx.Err() != nil {
			return nil
		}
		s.synced.Store(true)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// round is one scan + probe + delivery pass.
func (s *Source) round(ctx context.Context, h virt.Handler) {
	want := s.desired()
	s.mu.Lock()
	s.pending = make(map[string]string, len(want))
	for _, e := range want {
		s.pending[e.UUID] = e.Socket
	}
	s.mu.Unlock()

	errs := make([]error, len(want))
	// an answer within the last interval (to the poller's calls) is as good as a probe's
	since := time.Now().Add(-s.cfg.Interval)
	sem := make(chan struct{}, s.cfg.Parallel)
	var wg sync.WaitGroup
	for i, e := range want {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = s.cfg.Prober.Probe(ctx, e.UUID, s.cfg.ProbeTimeout, since)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}

	var evs []virt.Event
	var gone []string
	s.mu.Lock()
	seen := make(map[string]bool, len(want))
	for i, e := range want {
		seen[e.UUID] = true
		d := snapshot(e, errs[i] == nil)
		old, known := s.domains[e.UUID]
		s.domains[e.UUID] = d
		switch {
		case !known:
			s.log.Info("QGA socket domain found", "domain", e.Name, "domainUUID", e.UUID, "socket", e.Socket, "channel", string(d.QGAChannel))
			evs = append(evs, virt.Event{Type: virt.EventDomainAdded, Domain: d, Lifecycle: virt.LifecycleDiscovered, Reason: "QGA socket"})
		case old.QGAChannel != d.QGAChannel:
			evs = append(evs, virt.Event{Type: virt.EventAgentChannel, Domain: d, Reason: "QGA socket probe"})
			if d.QGAChannel == guest.ChannelConnected {
				s.log.Info("QGA socket agent answers", "domain", e.Name, "domainUUID", e.UUID, "socket", e.Socket)
			}
		case old.Name != d.Name || old.QGASocket != d.QGASocket:
			evs = append(evs, virt.Event{Type: virt.EventDomainUpdated, Domain: d, Reason: "QGA socket renamed"})
		}
		if errs[i] != nil && (!known || old.QGAChannel == guest.ChannelConnected) {
			s.log.Info("QGA socket agent does not answer", "domain", e.Name, "domainUUID", e.UUID, "socket", e.Socket, "error", errs[i].Error())
		}
	}
	for u, d := range s.domains {
		if !seen[u] {
			delete(s.domains, u)
			gone = append(gone, u)
			s.log.Info("QGA socket domain gone", "domain", d.Name, "domainUUID", u, "socket", d.QGASocket)
			evs = append(evs, virt.Event{Type: virt.EventDomainRemoved, Domain: d, Reason: "QGA socket removed"})
		}
	}
	s.mu.Unlock()
	for _, u := range gone {
		s.cfg.Prober.Forget(u)
	}
	for _, ev := range evs {
		h(ev)
	}
}

func snapshot(e Entry, answers bool) virt.Domain {
	d := virt.Domain{
		UUID: e.UUID, Name: e.Name, State: virt.StateUnknown, StateReason: StateReason, Persistent: true,
		HasQGAChannel: true, QGAChannelHint: guest.ChannelUnknown, QGAChannel: guest.ChannelDisconnected,
		Placement: virt.Placement{Publish: true}, QGASocket: e.Socket,
	}
	if answers {
		d.State, d.QGAChannel = virt.StateRunning, guest.ChannelConnected
	}
	return d
}

// desired lists the configured domains and the directory's sockets (list entries first).
func (s *Source) desired() []Entry {
	out := append([]Entry(nil), s.static...)
	if s.cfg.Directory == "" {
		return out
	}
	byUUID := make(map[string]string, len(out))
	listed := make(map[string]bool, len(out))
	for _, e := range out {
		byUUID[e.UUID] = e.Socket
		listed[filepath.Clean(e.Socket)] = true
	}
	ents, err := os.ReadDir(s.cfg.Directory)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != s.dirErr {
			s.dirErr = msg
			s.log.Error(err, "Cannot read the QGA socket directory; keeping its domains as they were", "directory", s.cfg.Directory)
		}
		for _, d := range s.domains { // a transient error must not remove every directory domain
			if _, ok := byUUID[d.UUID]; !ok && filepath.Dir(d.QGASocket) == filepath.Clean(s.cfg.Directory) {
				out = append(out, Entry{Name: d.Name, UUID: d.UUID, Socket: d.QGASocket})
			}
		}
		return out
	}
	if s.dirErr != "" {
		s.dirErr = ""
		s.log.Info("QGA socket directory readable again", "directory", s.cfg.Directory)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	badNow, dupsNow := map[string]bool{}, map[string]bool{}
	for _, de := range ents {
		if de.IsDir() {
			continue
		}
		path := filepath.Join(s.cfg.Directory, de.Name())
		if listed[path] {
			continue // a configured domain's socket kept in the directory
		}
		name, uuid, ok := ParseSocketName(de.Name())
		if !ok || de.Type()&fs.ModeSocket == 0 {
			badNow[de.Name()] = true
			if !s.bad[de.Name()] {
				s.log.Info("Ignoring a file in the QGA socket directory: not a unix socket named <name>_<uuid>.sock", "file", path)
			}
			continue
		}
		if other, dup := byUUID[uuid]; dup {
			dupsNow[path] = true
			if !s.dups[path] {
				s.log.Error(errors.New("configuration conflict: two QGA sockets for one domain UUID"),
					"Ignoring a QGA socket whose domain UUID is already served by another socket", "socket", path, "domainUUID", uuid, "served", other)
			}
			continue
		}
		byUUID[uuid] = path
		out = append(out, Entry{Name: name, UUID: uuid, Socket: path})
	}
	s.bad, s.dups = badNow, dupsNow
	return out
}

// ParseSocketName splits a directory entry <name>_<uuid>.sock; the UUID is returned in
// canonical lower case.
func ParseSocketName(file string) (name, uuid string, ok bool) {
	base, found := strings.CutSuffix(file, ".sock")
	if !found || len(base) < 38 || base[len(base)-37] != '_' {
		return "", "", false
	}
	uuid, ok = config.CanonicalUUID(base[len(base)-36:])
	if !ok {
		return "", "", false
	}
	return base[:len(base)-37], uuid, true
}

// Connected implements virt.Watcher (there is no daemon connection: always true).
func (s *Source) Connected() bool { return true }

// Synced implements virt.Watcher: true once the first scan and probe were delivered.
func (s *Source) Synced() bool { return s.synced.Load() }

// Domains implements virt.Watcher.
func (s *Source) Domains() []virt.Domain {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]virt.Domain, 0, len(s.domains))
	for _, d := range s.domains {
		out = append(out, d)
	}
	return out
}

// Domain implements virt.Watcher.
func (s *Source) Domain(uuid string) (virt.Domain, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.domains[uuid]
	return d, ok
}
