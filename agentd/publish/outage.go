package publish

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// outageProbeMaxDelay caps the interval between two probes of an unavailable API server (and is
// itself capped by Options.RetryMaxDelay): after an outage of any length, held writes resume at
// most this long after the API server answers again.
const outageProbeMaxDelay = 5 * time.Second

// outage is the publisher's view of an API server that does not answer. While it is down, one
// object at a time (the probe) retries its write with backoff; every other object that wants to
// write is held without sending anything, and all are released the moment any write is answered.
// Without it each object backed off on its own up to RetryMaxDelay: after a long outage a change
// waited up to a minute, and every object kept sending doomed attempts meanwhile.
// Guarded by Publisher.mu.
type outage struct {
	down  bool
	since time.Time
	probe string              // the UUID whose next attempt probes the API server
	next  time.Time           // not before (real time: the queue's delays are real)
	fails int                 // failed probes in this outage
	held  map[string]struct{} // objects waiting for the API server
}

// unavailable reports whether err says the API server did not answer (connection refused or
// reset, client timeouts), cannot serve for now (429, 503, 504, server timeout) or does not serve
// the resource yet (a 404 without an API status, as while a restarting server installs its custom
// resource handlers). Answers about the object itself (conflicts, validation, 404, 403, a 500
// from a webhook) are not outages: they are retried per object.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, errRetry) || errors.Is(err, context.Canceled) {
		return false
	}
	if apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServerTimeout(err) || (apierrors.IsNotFound(err) && apierrors.IsUnexpectedServerError(err)) {
		return true
	}
	var st apierrors.APIStatus
	return !errors.As(err, &st)
}

// held reports whether uuid must wait for the API server instead of being synced now, and if so
// records it as held.
func (p *Publisher) held(uuid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &p.outage
	if !o.down {
		return false
	}
	if o.probe == uuid {
		// an Upsert may queue the probe early; keep its schedule
		if wait := time.Until(o.next); wait > 0 {
			p.queue.AddAfter(uuid, wait)
			return true
		}
		return false
	}
	o.held[uuid] = struct{}{}
	heldObjects.Set(float64(len(o.held)))
	return true
}

// hold records that uuid's sync failed because the API server is unavailable. The first such
// failure starts an outage; a failed probe schedules the next one, rotating through the held
// objects so that one object cannot keep the others waiting.
func (p *Publisher) hold(uuid string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &p.outage
	if !o.down {
		*o = outage{down: true, since: p.opts.Clock(), probe: uuid, held: map[string]struct{}{}}
		p.log.Info("API server unavailable; holding status writes until it answers", "error", err.Error())
	}
	o.held[uuid] = struct{}{}
	heldObjects.Set(float64(len(o.held)))
	if o.probe != uuid {
		return // another object probes
	}
	o.fails++
	o.probe = p.nextProbeLocked(uuid)
	d := p.probeDelay(o.fails)
	o.next = time.Now().Add(d)
	p.queue.AddAfter(o.probe, d)
}

// passProbe is called when uuid's turn ended without an unavailable error and without a write
// being answered (the object needed no write, or vanished): the next held object probes at once.
func (p *Publisher) passProbe(uuid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &p.outage
	if !o.down {
		return
	}
	delete(o.held, uuid)
	heldObjects.Set(float64(len(o.held)))
	if o.probe != uuid {
		return
	}
	if len(o.held) == 0 {
		*o = outage{} // nothing left to write; the next failure starts a new outage
		return
	}
	o.probe = p.nextProbeLocked("")
	p.queue.Add(o.probe)
}

// answered is called after every API write that got an answer (success or an error about the
// object): an outage ends and every held object is queued again at once.
func (p *Publisher) answered() {
	p.mu.Lock()
	o := p.outage
	if !o.down {
		p.mu.Unlock()
		return
	}
	p.outage = outage{}
	heldObjects.Set(0)
	p.mu.Unlock()
	p.log.Info("API server answers again; releasing held status writes",
		"held", len(o.held), "outage", p.opts.Clock().Sub(o.since).Round(time.Millisecond).String())
	for u := range o.held {
		p.queue.Forget(u)
		p.queue.Add(u)
	}
}

// nextProbeLocked picks a held object other than last if there is one.
func (p *Publisher) nextProbeLocked(last string) string {
	for u := range p.outage.held {
		if u != last {
			return u
		}
	}
	return last
}

func (p *Publisher) probeDelay(fails int) time.Duration {
	maxDelay := min(p.opts.RetryMaxDelay, outageProbeMaxDelay)
	d := p.opts.RetryBaseDelay
	for i := 1; i < fails && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}
