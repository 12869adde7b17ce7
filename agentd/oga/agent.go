package oga

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/guest"
)

// OvirtGuestAgent is one domain's OGA endpoint: the guest data it reported, the channel state,
// the negotiated API version, and the requests that can be sent to it. All methods are safe for
// concurrent use. Obtain one from Listener.Add.
type OvirtGuestAgent struct {
	uuid string
	l    *Listener
	log  logr.Logger

	ctl     sync.Mutex // serialises start/stop/restart
	cancel  context.CancelFunc
	done    chan struct{}
	gone    chan struct{} // closed by Remove
	writeCh chan struct{} // 1-slot semaphore: one frame at a time per domain
	wbuf    []byte        // guarded by writeCh

	mu             sync.Mutex
	path           string
	model          model
	apiVersion     int
	conn           net.Conn
	attempted      bool          // a connect attempt finished in some session
	firstAttempt   chan struct{} // closed after the current session's first connect attempt
	connectedSince time.Time
	lastRead       time.Time
	lastMessage    time.Time
	timedOut       bool // idle timeout seen in this silence
	spoke          bool // a valid message arrived on the current connection
	responsive     bool // as last notified
	removed        bool
	waiters        map[string]chan struct{}
	cpuWaiters     []chan int64 // SetNumberOfCPUs calls waiting for the next number-of-cpus
	stats          Stats
	logged         logOnce
}

// logOnce remembers which per-connection warnings were already logged.
type logOnce struct {
	badLine, oversized, unknown, badVersion, panicked bool
}

// Stats counts what a domain's channel carried. The counters never reset.
type Stats struct {
	Messages        uint64 // valid messages (JSON objects with __name__)
	DroppedLines    uint64 // bad JSON, not an object, no __name__, too deep
	OversizedLines  uint64 // lines over MaxMessageSize
	UnknownMessages uint64 // valid messages with a name this side does not handle
	Connects        uint64 // successful connections
	ConnectFailures uint64 // failed connection attempts (socket missing, refused, timed out)
}

// State is a snapshot of a domain's OGA channel and agent.
type State struct {
	DomainUUID string
	SocketPath string
	// Channel is Connected while the socket is connected, Disconnected after a failed or lost
	// connection, Unknown before the first attempt.
	Channel guest.ChannelState
	// Spoken: a valid message arrived on the current connection. QEMU keeps the channel's socket
	// open whether or not an agent runs in the guest, so a Connected channel that has not spoken
	// is a channel with no agent behind it.
	Spoken bool
	// Responsive: a valid message arrived within Timing.ResponsiveTimeout.
	Responsive bool
	// APIVersion is the negotiated (effective) API version.
	APIVersion     int
	LastMessage    time.Time // zero if none yet
	ConnectedSince time.Time // zero while disconnected
	Stats          Stats
}

func newAgent(l *Listener, uuid, path string, apiVersion int) *OvirtGuestAgent {
	return &OvirtGuestAgent{
		uuid:         uuid,
		l:            l,
		log:          l.log.WithValues("domainUUID", uuid),
		gone:         make(chan struct{}),
		writeCh:      make(chan struct{}, 1),
		path:         path,
		apiVersion:   apiVersion,
		firstAttempt: make(chan struct{}),
		waiters:      map[string]chan struct{}{},
	}
}

// DomainUUID returns the domain this agent belongs to.
func (a *OvirtGuestAgent) DomainUUID() string { return a.uuid }

// Info returns a deep copy of the guest data reported so far. Groups the agent never reported
// are nil.
func (a *OvirtGuestAgent) Info() *guest.Info {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.model.info.DeepCopy()
}

// APIVersion returns the current negotiated API version, for persisting (e.g. in domain
// metadata before a migration) and passing back to Listener.Add later.
func (a *OvirtGuestAgent) APIVersion() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.apiVersion
}

// State returns a snapshot of the channel and agent state.
func (a *OvirtGuestAgent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := State{
		DomainUUID:     a.uuid,
		SocketPath:     a.path,
		Channel:        guest.ChannelUnknown,
		Responsive:     a.isResponsiveLocked(a.l.now()),
		APIVersion:     a.apiVersion,
		LastMessage:    a.lastMessage,
		ConnectedSince: a.connectedSince,
		Stats:          a.stats,
	}
	switch {
	case a.conn != nil:
		s.Channel = guest.ChannelConnected
		s.Spoken = a.spoke
	case a.attempted:
		s.Channel = guest.ChannelDisconnected
	}
	return s
}

func (a *OvirtGuestAgent) isResponsiveLocked(now time.Time) bool {
	return !a.lastMessage.IsZero() && now.Sub(a.lastMessage) < a.l.timing.ResponsiveTimeout
}

func (a *OvirtGuestAgent) socketPath() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.path
}

// --- session control -------------------------------------------------------------------------

func (a *OvirtGuestAgent) start(parent context.Context) {
	a.ctl.Lock()
	defer a.ctl.Unlock()
	a.startLocked(parent)
}

func (a *OvirtGuestAgent) startLocked(parent context.Context) {
	if a.cancel != nil || parent == nil {
		return
	}
	a.mu.Lock()
	if a.removed {
		a.mu.Unlock()
		return
	}
	path, first := a.path, a.firstAttempt
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	a.cancel, a.done = cancel, done
	go func() {
		defer close(done)
		a.run(ctx, path, first)
	}()
}

func (a *OvirtGuestAgent) stop() {
	a.ctl.Lock()
	defer a.ctl.Unlock()
	a.stopLocked()
}

func (a *OvirtGuestAgent) stopLocked() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel, a.done = nil, nil
}

func (a *OvirtGuestAgent) restart(parent context.Context, path string) {
	a.ctl.Lock()
	defer a.ctl.Unlock()
	a.stopLocked()
	a.mu.Lock()
	a.path = path
	a.firstAttempt = make(chan struct{})
	a.mu.Unlock()
	a.log.Info("Guest agent socket path changed", "path", path)
	a.startLocked(parent)
}

func (a *OvirtGuestAgent) markRemoved() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.removed {
		a.removed = true
		close(a.gone)
	}
}

// --- requests --------------------------------------------------------------------------------

// gate applies VDSM's send gate for a command.
func (a *OvirtGuestAgent) gate(cmd string) error {
	need := MinAPIVersion(cmd)
	if need == 0 {
		return nil
	}
	if v := a.APIVersion(); v < need {
		return &UnsupportedError{Command: cmd, Required: need, Negotiated: v}
	}
	return nil
}

// awaitConn returns the current connection. Without one it waits (bounded by ctx and
// Timing.FirstConnectWait) for the first connect attempt of the current session, like VDSM's
// _first_connect; after that attempt it fails at once.
func (a *OvirtGuestAgent) awaitConn(ctx context.Context) (net.Conn, error) {
	a.mu.Lock()
	conn, first, removed := a.conn, a.firstAttempt, a.removed
	a.mu.Unlock()
	if conn != nil {
		return conn, nil
	}
	if removed {
		return nil, fmt.Errorf("%w: domain removed", ErrNotConnected)
	}
	t := time.NewTimer(a.l.timing.FirstConnectWait)
	defer t.Stop()
	select {
	case <-first:
	case <-a.gone:
	case <-t.C:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	}
	a.mu.Lock()
	conn = a.conn
	a.mu.Unlock()
	if conn == nil {
		return nil, ErrNotConnected
	}
	return conn, nil
}

// send gates, waits for a connection and writes one command frame.
func (a *OvirtGuestAgent) send(ctx context.Context, cmd string, args ...arg) error {
	if err := a.gate(cmd); err != nil {
		return err
	}
	conn, err := a.awaitConn(ctx)
	if err != nil {
		return err
	}
	return a.write(ctx, conn, cmd, args...)
}

// write sends one whole frame on conn with a write deadline. A failed write may have sent part
// of the frame, which would corrupt the guest's framing, so the connection is closed; the
// reader notices and reconnects (and a fresh refresh follows).
func (a *OvirtGuestAgent) write(ctx context.Context, conn net.Conn, cmd string, args ...arg) error {
	select {
	case a.writeCh <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("oga: send %s: %w", cmd, ctx.Err())
	}
	defer func() { <-a.writeCh }()
	a.wbuf = appendFrame(a.wbuf[:0], cmd, args...)
	deadline := time.Now().Add(a.l.timing.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetWriteDeadline(deadline)
	_, err := conn.Write(a.wbuf)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("oga: send %s: %w", cmd, err)
	}
	return nil
}

// Shutdown asks the guest to power off (or reboot) after delay, showing message to users.
// The wire form is {"timeout": <seconds>, "message": ..., "reboot": "True"|"False"}; delay is
// rounded up to whole seconds (the guest rounds up to minutes).
func (a *OvirtGuestAgent) Shutdown(ctx context.Context, delay time.Duration, message string, reboot bool) error {
	secs := int64(0)
	if delay > 0 {
		secs = int64(math.Ceil(delay.Seconds()))
	}
	return a.send(ctx, CmdShutdown, intArg("timeout", secs), strArg("message", message),
		strArg("reboot", pyBool(reboot)))
}

// LockScreen locks the guest desktop session.
func (a *OvirtGuestAgent) LockScreen(ctx context.Context) error { return a.send(ctx, CmdLockScreen) }

// LogOff logs the desktop user off.
func (a *OvirtGuestAgent) LogOff(ctx context.Context) error { return a.send(ctx, CmdLogOff) }

// SetNumberOfCPUs sends set-number-of-cpus {count} (needs API version 1; below it
// ErrUnsupportedByGuestVersion and nothing is sent) and waits up to timeout
// (Timing.CompletionTimeout when ≤ 0) for the guest's next number-of-cpus report, whose count
// (the guest's online CPUs, -1 when it cannot tell) it returns. The guest answers every
// set-number-of-cpus with count > 0 by such a report; the Linux agent's handler changes nothing
// else, so callers compare the reported count with the one asked for. Without a report it
// returns an error matching ErrNoCompletion.
func (a *OvirtGuestAgent) SetNumberOfCPUs(ctx context.Context, count int, timeout time.Duration) (int, error) {
	if err := a.gate(CmdSetNumberOfCPUs); err != nil {
		return 0, err
	}
	conn, err := a.awaitConn(ctx)
	if err != nil {
		return 0, err
	}
	ch := make(chan int64, 1)
	a.mu.Lock()
	a.cpuWaiters = append(a.cpuWaiters, ch)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.cpuWaiters = slices.DeleteFunc(a.cpuWaiters, func(c chan int64) bool { return c == ch })
		a.mu.Unlock()
	}()
	if err := a.write(ctx, conn, CmdSetNumberOfCPUs, intArg("count", int64(count))); err != nil {
		return 0, err
	}
	if timeout <= 0 {
		timeout = a.l.timing.CompletionTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case n := <-ch:
		return int(max(min(n, math.MaxInt32), -1)), nil
	case <-t.C:
		return 0, fmt.Errorf("%w: no number-of-cpus report after %v", ErrNoCompletion, timeout)
	case <-a.gone:
		return 0, fmt.Errorf("%w: number-of-cpus: domain removed", ErrNoCompletion)
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: number-of-cpus: %w", ErrNoCompletion, ctx.Err())
	}
}

// Hibernate asks the guest to suspend itself to disk (or memory). An empty state means disk.
func (a *OvirtGuestAgent) Hibernate(ctx context.Context, state HibernateState) error {
	if state == "" {
		state = HibernateDisk
	}
	return a.send(ctx, CmdHibernate, strArg("state", string(state)))
}

// LifecycleEvent runs the guest's hooks for hook (e.g. HookBeforeMigration; needs API version 3,
// otherwise ErrUnsupportedByGuestVersion and nothing is sent). failure marks a failed operation
// (the Linux guest ignores it). With wait, a fresh reply_id is sent and LifecycleEvent waits up to
// timeout (Timing.CompletionTimeout when ≤ 0) for the guest's completion; if none arrives it
// returns an error matching ErrNoCompletion. Note that a guest without a hooks directory for the
// event never answers. Without wait it returns once the frame is written.
func (a *OvirtGuestAgent) LifecycleEvent(ctx context.Context, hook string, failure, wait bool, timeout time.Duration) error {
	if err := a.gate(CmdLifecycleEvent); err != nil {
		return err
	}
	args := []arg{strArg("type", hook)}
	var id string
	var ch chan struct{}
	if wait {
		id = newReplyID()
		ch = make(chan struct{})
		args = append(args, strArg("reply_id", id))
		a.mu.Lock()
		a.waiters[id] = ch
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			delete(a.waiters, id)
			a.mu.Unlock()
		}()
	}
	if failure {
		args = append(args, boolArg("failure", true))
	}
	conn, err := a.awaitConn(ctx)
	if err != nil {
		return err
	}
	if err := a.write(ctx, conn, CmdLifecycleEvent, args...); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	if timeout <= 0 {
		timeout = a.l.timing.CompletionTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: %s after %v", ErrNoCompletion, hook, timeout)
	case <-a.gone:
		return fmt.Errorf("%w: %s: domain removed", ErrNoCompletion, hook)
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %w", ErrNoCompletion, hook, ctx.Err())
	}
}

// newReplyID returns a random UUID version 4 string.
func newReplyID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
