package oga

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// readBufSize is the read chunk per connection. VDSM reads 64 KiB; framing does not depend on
// it, and a smaller buffer keeps idle memory per domain low.
const readBufSize = 16 << 10

// run is one connection session for path: connect, serve, reconnect, until ctx ends.
//
// Reconnect policy (VDSM vmchannels): after a failed connect wait ConnectRetryDelay; after
// QuickRetries consecutive failures wait CooldownDelay instead. The failure count is reset only
// by a successful read, so a socket that accepts but never carries data stays in cooldown once
// it fails again. After a lost connection the next attempt comes after ConnectRetryDelay.
func (a *OvirtGuestAgent) run(ctx context.Context, path string, first chan struct{}) {
	t := a.l.timing
	firstDone := false
	markFirst := func() {
		if !firstDone {
			firstDone = true
			close(first)
		}
	}
	defer markFirst()
	failures := 0
	failLogged := false
	for ctx.Err() == nil {
		conn, err := a.l.dial(ctx, path)
		if err != nil {
			a.mu.Lock()
			firstAttempt := !a.attempted
			a.attempted = true
			a.stats.ConnectFailures++
			a.mu.Unlock()
			if firstAttempt {
				a.l.notify(a.uuid) // the channel is now Disconnected, no longer Unknown
			}
			markFirst()
			if ctx.Err() != nil {
				return
			}
			failures++
			if !failLogged {
				failLogged = true
				a.log.V(1).Info("Cannot connect to guest agent socket", "path", path, "error", err.Error())
			}
			delay := t.ConnectRetryDelay
			if failures >= t.QuickRetries {
				delay = t.CooldownDelay
			}
			if !a.pause(ctx, delay) {
				return
			}
			continue
		}
		failLogged = false
		a.connected(conn)
		markFirst()
		// Advertise our version on every connect. A failure closes conn; the read loop ends.
		_ = a.write(ctx, conn, CmdRefresh, intArg("apiVersion", MaxAPIVersion))
		if a.readLoop(ctx, conn) {
			failures = 0
		}
		a.disconnected(conn)
		if !a.pause(ctx, t.ConnectRetryDelay) {
			return
		}
	}
}

// pause waits d between connect attempts, or until ctx ends (false). No read deadline runs while
// there is no connection, so pause also expires responsiveness on time: "responsive" means a valid
// message within Timing.ResponsiveTimeout whether or not a connection exists.
func (a *OvirtGuestAgent) pause(ctx context.Context, d time.Duration) bool {
	end := time.NewTimer(d)
	defer end.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	for {
		var expired <-chan time.Time
		if left, ok := a.responsiveLeft(); ok {
			expiry.Reset(max(left, time.Millisecond))
			expired = expiry.C
		}
		select {
		case <-end.C:
			return true
		case <-ctx.Done():
			return false
		case <-expired:
			a.expireResponsive()
		}
	}
}

// responsiveLeft returns how long the agent stays responsive without a new message; ok is false
// while it is not responsive.
func (a *OvirtGuestAgent) responsiveLeft() (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.responsive {
		return 0, false
	}
	return a.l.timing.ResponsiveTimeout - a.l.now().Sub(a.lastMessage), true
}

// expireResponsive re-evaluates responsiveness and notifies a change.
func (a *OvirtGuestAgent) expireResponsive() {
	a.mu.Lock()
	changed, resp := a.updateResponsiveLocked(a.l.now())
	a.mu.Unlock()
	if changed {
		a.log.V(1).Info("guest agent responsiveness changed", "responsive", resp)
		a.l.notify(a.uuid)
	}
}

func (a *OvirtGuestAgent) connected(conn net.Conn) {
	now := a.l.now()
	a.mu.Lock()
	a.conn = conn
	a.attempted = true
	a.connectedSince = now
	a.lastRead = now // VDSM: read_time = now on connect
	a.timedOut = false
	a.spoke = false
	a.logged = logOnce{}
	a.stats.Connects++
	path := a.path
	a.mu.Unlock()
	a.log.Info("Guest agent channel connected", "path", path)
	a.l.notify(a.uuid)
}

func (a *OvirtGuestAgent) disconnected(conn net.Conn) {
	a.mu.Lock()
	if a.conn == conn {
		a.conn = nil
	}
	a.connectedSince = time.Time{}
	a.mu.Unlock()
	_ = conn.Close() // the only Close of a connection besides a failed write's
	a.log.Info("Guest agent channel disconnected")
	a.l.notify(a.uuid)
}

// readLoop reads conn until EOF, an error or ctx's end, and reports whether any data arrived.
// The read deadline doubles as the timer for the idle timeout and the responsiveness expiry.
func (a *OvirtGuestAgent) readLoop(ctx context.Context, conn net.Conn) bool {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, readBufSize)
	sp := newLineSplitter(MaxMessageSize)
	var d decoder
	got := false
	for {
		_ = conn.SetReadDeadline(a.nextDeadline())
		if ctx.Err() != nil { // after SetReadDeadline: see the AfterFunc ordering note below
			return got
		}
		// If ctx ends after the check above, the AfterFunc runs after our SetReadDeadline and
		// its past deadline wakes Read.
		n, err := conn.Read(buf)
		if n > 0 {
			got = true
			a.process(sp, &d, buf[:n])
		}
		if err != nil {
			if ctx.Err() != nil {
				return got
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				a.tick()
				continue
			}
			return got
		}
	}
}

// nextDeadline is the next moment something time-based can change: the idle timeout (once per
// silence) or the responsiveness expiry.
func (a *OvirtGuestAgent) nextDeadline() time.Time {
	t := a.l.timing
	now := time.Now()
	a.mu.Lock()
	clockNow := a.l.now()
	next := t.IdleTimeout
	if !a.timedOut {
		next = min(next, t.IdleTimeout-clockNow.Sub(a.lastRead))
	}
	if a.responsive {
		next = min(next, t.ResponsiveTimeout-clockNow.Sub(a.lastMessage))
	}
	a.mu.Unlock()
	return now.Add(max(next, time.Millisecond))
}

// tick handles a read deadline: idle timeout and responsiveness expiry.
func (a *OvirtGuestAgent) tick() {
	now := a.l.now()
	a.mu.Lock()
	changed := false
	timedOut := false
	if !a.timedOut && now.Sub(a.lastRead) >= a.l.timing.IdleTimeout {
		a.timedOut, timedOut = true, true
		changed = a.model.clearMemory()
	}
	respChanged, resp := a.updateResponsiveLocked(now)
	a.mu.Unlock()
	if timedOut {
		a.log.Info("Guest agent channel timed out", "silence", a.l.timing.IdleTimeout.String())
	}
	if respChanged {
		a.log.V(1).Info("Guest agent responsiveness changed", "responsive", resp)
	}
	if changed || respChanged {
		a.l.notify(a.uuid)
	}
}

func (a *OvirtGuestAgent) updateResponsiveLocked(now time.Time) (changed, responsive bool) {
	r := a.isResponsiveLocked(now)
	if r == a.responsive {
		return false, r
	}
	a.responsive = r
	return true, r
}

// chunkEffects collects what processing a chunk requires after the lock is released.
type chunkEffects struct {
	changed    bool
	sends      [4]int // api-version values to send, in order
	nsends     int
	apiChanges [][2]int
	logBadLine error
	logOversz  bool
	logUnknown bool
	logBadVer  bool
	logPanic   any
}

// process frames and applies one chunk of data. Guest data is applied under the agent's lock;
// logging, sends and notifications happen after it is released.
func (a *OvirtGuestAgent) process(sp *lineSplitter, d *decoder, chunk []byte) {
	var fx chunkEffects
	now := a.l.now()
	a.mu.Lock()
	a.lastRead = now
	a.timedOut = false
	sp.feed(chunk, func(line []byte) { a.handleLineLocked(d, line, now, &fx) }, func() {
		a.stats.OversizedLines++
		if !a.logged.oversized {
			a.logged.oversized, fx.logOversz = true, true
		}
	})
	respChanged, resp := a.updateResponsiveLocked(now)
	a.mu.Unlock()

	if fx.logOversz {
		a.log.Info("Dropping oversized guest agent message", "limit", MaxMessageSize)
	}
	if fx.logBadLine != nil {
		a.log.Info("Dropping malformed guest agent message", "error", fx.logBadLine.Error())
	}
	if fx.logUnknown {
		a.log.V(1).Info("Ignoring unknown guest agent message type")
	}
	if fx.logBadVer {
		a.log.Info("Invalid apiVersion in guest agent heartbeat, using 0")
	}
	if fx.logPanic != nil {
		a.log.Error(fmt.Errorf("%v", fx.logPanic), "Recovered from panic handling a guest agent message")
	}
	for _, c := range fx.apiChanges {
		a.log.Info("Guest agent API version changed", "from", c[0], "to", c[1])
	}
	for _, v := range fx.sends[:fx.nsends] {
		a.mu.Lock()
		conn := a.conn
		a.mu.Unlock()
		if conn != nil {
			_ = a.write(context.Background(), conn, CmdAPIVersion, intArg("apiVersion", int64(v)))
		}
	}
	if respChanged {
		a.log.V(1).Info("Guest agent responsiveness changed", "responsive", resp)
	}
	if fx.changed || respChanged || len(fx.apiChanges) > 0 {
		a.l.notify(a.uuid)
	}
}

// handleLineLocked applies one line. The recover is a last resort: the decoder and handlers are
// written not to panic on any input (see FuzzDecode).
func (a *OvirtGuestAgent) handleLineLocked(d *decoder, line []byte, now time.Time, fx *chunkEffects) {
	defer func() {
		if p := recover(); p != nil {
			a.stats.DroppedLines++
			if !a.logged.panicked {
				a.logged.panicked, fx.logPanic = true, p
			}
		}
	}()
	r := a.model.handleLine(d, line, &a.apiVersion, now)
	if r.err != nil {
		a.stats.DroppedLines++
		if !a.logged.badLine {
			a.logged.badLine, fx.logBadLine = true, r.err
		}
		return
	}
	a.stats.Messages++
	a.lastMessage = now
	if !a.spoke {
		a.spoke, fx.changed = true, true
	}
	fx.changed = fx.changed || r.changed
	if r.unknown {
		a.stats.UnknownMessages++
		if !a.logged.unknown {
			a.logged.unknown, fx.logUnknown = true, true
		}
	}
	if r.apiInvalid && !a.logged.badVersion {
		a.logged.badVersion, fx.logBadVer = true, true
	}
	if r.apiChanged && len(fx.apiChanges) < 8 {
		fx.apiChanges = append(fx.apiChanges, [2]int{r.apiFrom, r.apiTo})
	}
	if r.sendVersion > 0 && fx.nsends < len(fx.sends) {
		fx.sends[fx.nsends] = r.sendVersion
		fx.nsends++
	}
	if r.cpusSet {
		for _, ch := range a.cpuWaiters {
			ch <- r.cpus // buffered for one; each waiter is removed after its first report
		}
		a.cpuWaiters = a.cpuWaiters[:0]
	}
	if r.completion != nil {
		if ch, ok := a.waiters[string(r.completion)]; ok {
			close(ch)
			delete(a.waiters, string(r.completion))
		}
	}
}
