package publish

import (
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"guestagent.io/operator/api/v1alpha1"
)

// handover is where a domain's object stands between this node and another one.
type handover uint8

const (
	// handoverNone: the object names this node, or nothing is pending.
	handoverNone handover = iota
	// handoverAwait: the object names another node that has not released it (the source of a
	// live migration, which releases when the domain left it): adopt it once it is released.
	handoverAwait
	// handoverReclaim: another node took over the object of a domain that runs here, which this
	// node never released: take it back without waiting for a release.
	handoverReclaim
)

// Backoff of the re-reads of an object that waits for its release: the source releases when its
// migration completes, which is before or a few seconds after the destination sees the domain.
const (
	releaseWaitBase = 250 * time.Millisecond
	releaseWaitMax  = 5 * time.Second
)

// errAwaitRelease asks for a re-read of the object after releaseWait: it names another node that
// has not released it, or the admission policy refused the take-over.
var errAwaitRelease = errors.New("waiting for the other node to release the GuestAgentStatus")

// ReasonTakenOver is the reason of the Warning Event recorded when another node took over the
// object of a domain that runs on this node without a release.
const ReasonTakenOver = "TakenOverWithoutRelease"

// releaseWait is the delay before the next re-read of an object waiting for its release, after
// waits such re-reads: 250 ms doubling up to 5 s.
func releaseWait(waits int) time.Duration {
	if waits >= 5 {
		return releaseWaitMax
	}
	return min(releaseWaitBase<<max(waits-1, 0), releaseWaitMax)
}

// mayTakeOver reports whether this node may adopt obj, which names another node: that node
// released it, or took it from this node without a release.
func (p *Publisher) mayTakeOver(e *entry, obj *v1alpha1.GuestAgentStatus) bool {
	return e.handover == handoverReclaim || releasedBy(obj, obj.Spec.NodeName)
}

// awaitRelease records that the object of e names node from, which has not released it (refused
// is nil), or that the API server refused the take-over or reclaim (refused says why): from then
// on the object is only read, with backoff, until from released it. The first of a streak is
// logged.
func (p *Publisher) awaitRelease(e *entry, from string, refused error) error {
	if e.handoverWaits == 0 {
		kv := []any{"guestAgentStatus", klog.KRef(e.ns, e.name), "domainUUID", e.uuid, "otherNode", from}
		if refused != nil {
			p.log.Info("Taking over GuestAgentStatus was refused; retrying with backoff", append(kv, "error", refused.Error())...)
		} else {
			p.log.Info("GuestAgentStatus names another node that has not released it; waiting for the release", kv...)
		}
	}
	// A refused reclaim is not tried again: like an adoption, it waits for a release.
	e.handover = handoverAwait
	e.handoverWaits++
	releaseWaits.Inc()
	// Upserts in between (the guest's data changes) do not read it again before that either.
	e.notBefore = p.opts.Clock().Add(releaseWait(e.handoverWaits))
	return errAwaitRelease
}

// lostTo handles a fresh read showing that the object of a domain this node publishes names
// another node. It reports whether the object must be adopted (taken back, or waited for):
// false means it was adopted after this node released it, and is left to the other node.
func (p *Publisher) lostTo(e *entry, obj *v1alpha1.GuestAgentStatus, d *Desired) bool {
	kv := []any{"guestAgentStatus", klog.KRef(e.ns, e.name), "domainUUID", e.uuid, "otherNode", obj.Spec.NodeName}
	if r := obj.Status.Release; e.handover == handoverNone && r != nil && r.NodeName == p.opts.NodeName {
		e.on(evOtherNode)
		e.checkedAt = p.opts.Clock()
		p.log.Info("GuestAgentStatus was adopted by another node; not writing it", kv...)
		return false
	}
	if e.handover == handoverNone {
		p.log.Info("GuestAgentStatus of a domain that runs on this node was taken over by another node without a release; taking it back", kv...)
		takenOver.Inc()
		if p.opts.Events != nil {
			p.opts.Events.Eventf(obj, nil, corev1.EventTypeWarning, ReasonTakenOver, "Reclaim",
				"Node %s took this object over although node %s runs the domain and did not release it; node %s takes it back",
				obj.Spec.NodeName, p.opts.NodeName, p.opts.NodeName)
		}
		e.handover, e.handoverWaits = handoverReclaim, 0
	}
	p.learn(e, obj, d)
	return true
}
