package publish

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/api/v1alpha1"
)

// ownerRetry bounds how often the node is read for the owner reference after a failed read or
// after one of our objects was deleted by someone else.
const ownerRetry = 2 * time.Second

// ObjectDeleted tells the publisher that a watch of this node's objects saw the object with uid,
// of the domain uuid, deleted or leave this node's label selection. Without it an object deleted
// by someone else (kubectl delete, the garbage collector after the Node object was re-created)
// stayed missing until the guest's data next changed, which for a quiet guest is never.
//
// The publisher re-reads the object if it still publishes that domain into that very object
// (same UID): a missing object is created again at once with its latest status and its history of
// executed commands; one adopted by another node after this node released it is left to it; one
// whose labels were edited is taken back, and so is one another node took over although this
// node never released it (with a Warning Event and guestagent_agentd_status_taken_over_total).
// Deletions the publisher made itself and objects replaced since are ignored. Safe for concurrent
// use; it returns at once.
func (p *Publisher) ObjectDeleted(uuid string, uid types.UID) {
	if uid != "" {
		p.watchReport(uuid, func(e *entry) { e.gone = uid })
	}
}

// ObjectChanged tells the publisher that the watch saw the object with uid, of the domain uuid,
// at resourceVersion rv. An object the publisher did not write at that version (someone edited its
// status, labels or owner) is re-read, and a status that no longer matches what the guest reports
// is written again: agentd is the source of truth of its statuses. Safe for concurrent use.
func (p *Publisher) ObjectChanged(uuid string, uid types.UID, rv string) {
	if uid != "" && rv != "" {
		p.watchReport(uuid, func(e *entry) { e.changedUID, e.changedRV = uid, rv })
	}
}

// watchReport records a watch event with note (under p.mu) for a domain the publisher still
// publishes, and schedules a sync whose takeWatchReports looks at it.
func (p *Publisher) watchReport(uuid string, note func(*entry)) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return
	}
	p.mu.Lock()
	e := p.entries[u]
	if e == nil || e.desired == nil || e.removed {
		p.mu.Unlock()
		return
	}
	note(e)
	e.gen++
	p.mu.Unlock()
	p.enqueue(u)
}

// Listed is an object as the watch's first listing saw it.
type Listed struct {
	UID             types.UID
	ResourceVersion string
}

// ObjectsListed is called once the watch of this node's objects has listed them (by domain UUID),
// so that deletions and changes before the watch began are noticed too: every published domain
// whose object is not in the listing, is another object, or is at another version is re-read. It
// waits for the publisher's startup listing.
func (p *Publisher) ObjectsListed(ctx context.Context, present map[string]Listed) error {
	select {
	case <-p.seeded:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	var check []string
	for u, e := range p.entries {
		if e.desired != nil && !e.removed {
			e.listed, e.listedAs = true, present[u]
			e.gen++
			check = append(check, u)
		}
	}
	for u, obj := range p.seed { // objects of domains not seen yet that are already gone
		if present[u].UID != obj.UID {
			delete(p.seed, u)
		}
	}
	p.mu.Unlock()
	for _, u := range check {
		p.enqueue(u)
	}
	return nil
}

// takeWatchReports moves a deletion reported by ObjectDeleted, a listing by ObjectsListed or a change by
// ObjectChanged into the worker's state: the object must be re-read if it is the one this
// publisher knows and it went missing or was changed by someone else. An object created after the
// listing, or an event of an older write of ours, costs one needless read.
func (p *Publisher) takeWatchReports(e *entry) {
	p.mu.Lock()
	gone, listed, listedAs := e.gone, e.listed, e.listedAs
	changedUID, changedRV := e.changedUID, e.changedRV
	e.gone, e.listed, e.listedAs, e.changedUID, e.changedRV = "", false, Listed{}, "", ""
	p.mu.Unlock()
	if !e.state.located() {
		return
	}
	if (gone != "" && gone == e.uid) || (listed && listedAs.UID != e.uid) {
		e.on(evWatch)
		p.forgetOwner()
	}
	if listed && listedAs.ResourceVersion != e.rv {
		e.on(evWatch)
	}
	// The queue serialises a domain's syncs, so our own last write's resourceVersion is recorded
	// before an event of it is looked at here.
	if changedUID == e.uid && changedRV != e.rv {
		e.on(evWatch)
	}
}

// recheckLost re-reads an object the watch saw go, and reports whether it is missing: the caller
// then creates it again at the same place.
func (p *Publisher) recheckLost(ctx context.Context, e *entry, d *Desired) (bool, error) {
	if _, err := p.nodeOwner(ctx); err != nil { // takeWatchReports may have forgotten it
		return false, err
	}
	var obj v1alpha1.GuestAgentStatus
	err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.name}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		p.log.Info("GuestAgentStatus was deleted by someone else; creating it again",
			"guestAgentStatus", klog.KRef(e.ns, e.name), "domainUUID", e.uuid)
		p.forget(e)
		return e.on(evMissing) == actCreate, nil
	case err != nil:
		return false, fmt.Errorf("re-reading GuestAgentStatus %s/%s after it went missing: %w", e.ns, e.name, err)
	case obj.Spec.NodeName != p.opts.NodeName:
		p.lostTo(e, &obj, d) // taken back by adopt() unless this node released it
	default:
		p.learn(e, &obj, d) // labels or owner edited: adopt() puts them back; a status edited: re-applied
	}
	return false, nil
}

// forget drops the status the publisher knew of an object that no longer exists (its caller
// records the lifecycle event); its history of executed commands is carried into the object that
// replaces it.
func (p *Publisher) forget(e *entry) {
	if e.applied != nil {
		e.carry = append(e.carry, e.applied.ExecutedCommands...)
	}
	e.applied, e.rejected = nil, nil
}
