package oga

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// ListenerOptions configures a Listener.
type ListenerOptions struct {
	// Log receives state transitions only (connected, disconnected, API version changed, timed
	// out), never one line per message.
	Log logr.Logger
	// OnChange is called with a domain UUID after that domain's guest data or agent state
	// changed. It is called synchronously from the domain's connection goroutine, without locks
	// held, possibly for several changes at once (coalesced per read); it must return quickly
	// and may call back into the Listener and the agent.
	OnChange func(domainUUID string)
	// Timing overrides delays and timeouts; zero fields take VDSM's values.
	Timing Timing
	// Now is the clock for timestamps (login times, last message, responsiveness). Deadlines
	// and delays always use real time; shrink Timing in tests instead. Default time.Now.
	Now func() time.Time
	// Dial connects to a domain's OGA socket. Default: a unix stream connection.
	Dial func(ctx context.Context, socketPath string) (net.Conn, error)
}

// Listener serves the OGA sockets of all domains on a node. It dials QEMU's listening unix
// socket of each added domain (QEMU's chardev with mode='bind'; the host is the client, as in
// VDSM) from one goroutine per domain, and keeps reconnecting until the domain is removed.
type Listener struct {
	log      logr.Logger
	onChange func(string)
	timing   Timing
	now      func() time.Time
	dial     func(ctx context.Context, path string) (net.Conn, error)

	mu       sync.Mutex
	agents   map[string]*OvirtGuestAgent
	runCtx   context.Context // non-nil while Run runs
	finished bool
	ran      bool
}

// NewListener returns a Listener; call Run to start connecting.
func NewListener(opts ListenerOptions) *Listener {
	l := &Listener{
		log:      opts.Log,
		onChange: opts.OnChange,
		timing:   opts.Timing.withDefaults(),
		now:      opts.Now,
		dial:     opts.Dial,
		agents:   map[string]*OvirtGuestAgent{},
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.dial == nil {
		timeout := l.timing.DialTimeout
		l.dial = func(ctx context.Context, path string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(ctx, "unix", path)
		}
	}
	return l
}

// Run connects every added domain and serves them until ctx ends; then it stops every
// connection, waits for their goroutines and returns nil. Domains added while Run runs start at
// once; domains added before start when Run starts. Run may be called only once.
func (l *Listener) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.ran {
		l.mu.Unlock()
		return ErrListenerStopped
	}
	l.ran = true
	l.runCtx = ctx
	for _, a := range l.agents {
		a.start(ctx)
	}
	l.mu.Unlock()

	<-ctx.Done()

	l.mu.Lock()
	l.runCtx = nil
	l.finished = true
	agents := make([]*OvirtGuestAgent, 0, len(l.agents))
	for _, a := range l.agents {
		agents = append(agents, a)
	}
	l.mu.Unlock()
	for _, a := range agents {
		a.stop()
	}
	return nil
}

// Add registers a domain's OGA socket and returns its agent. socketPath is the source path of
// the domain's `ovirt-guest-agent.0` channel (legacy `com.redhat.rhevm.vdsm`), taken from the
// domain XML by the caller. An empty path means the domain has no OGA channel: nothing is
// guessed, any existing agent for the domain is removed and Add returns nil.
//
// initialAPIVersion seeds the negotiated API version (clamped to [0, 3]), e.g. restored from
// domain metadata after a migration or an agentd restart, so version-gated commands such as
// lifecycle hooks can be sent before the first heartbeat.
//
// Add is idempotent: for a known domain with the same path it returns the existing agent
// unchanged (initialAPIVersion is ignored). A changed path keeps the agent and its data but
// replaces the connection.
func (l *Listener) Add(domainUUID, socketPath string, initialAPIVersion int) *OvirtGuestAgent {
	if socketPath == "" {
		l.Remove(domainUUID)
		return nil
	}
	l.mu.Lock()
	a := l.agents[domainUUID]
	if a == nil {
		a = newAgent(l, domainUUID, socketPath, ClampAPIVersion(initialAPIVersion))
		l.agents[domainUUID] = a
		if l.runCtx != nil {
			a.start(l.runCtx)
		}
		l.mu.Unlock()
		return a
	}
	runCtx := l.runCtx
	l.mu.Unlock()
	if a.socketPath() != socketPath {
		a.restart(runCtx, socketPath)
	}
	return a
}

// Remove stops and forgets a domain's agent: its connection is closed and its goroutine has
// exited when Remove returns. Pending requests fail with ErrNotConnected or ErrNoCompletion.
func (l *Listener) Remove(domainUUID string) {
	l.mu.Lock()
	a := l.agents[domainUUID]
	delete(l.agents, domainUUID)
	l.mu.Unlock()
	if a != nil {
		a.markRemoved()
		a.stop()
	}
}

// Agent returns the agent of a domain, or nil if the domain was not added.
func (l *Listener) Agent(domainUUID string) *OvirtGuestAgent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.agents[domainUUID]
}

// Domains returns the UUIDs of all added domains, in no particular order.
func (l *Listener) Domains() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.agents))
	for id := range l.agents {
		out = append(out, id)
	}
	return out
}

func (l *Listener) notify(domainUUID string) {
	if l.onChange != nil {
		l.onChange(domainUUID)
	}
}
