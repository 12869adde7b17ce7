package publish

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
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
// executed commands; one adopted by another node is left to it; one whose labels were edited is
// taken back. Deletions the publisher made itself and objects replaced since are ignored. Safe
// for concurrent use; it returns at once.
func (p *Publisher) ObjectDeleted(uuid string, uid types.UID) {
	u, err := NormalizeUUID(uuid)
	if err != nil || uid == "" {
		return
	}
	p.mu.Lock()
	e := p.entries[u]
	if e == nil || e.desired == nil || e.removed {
		p.mu.Unlock()
		return
	}
	e.gone = uid
	e.gen++
	p.mu.Unlock()
	p.enqueue(u)
}

// ObjectsListed is called once the watch of this node's objects has listed them (their UIDs by
// domain UUID), so that objects deleted before the watch began are noticed too: every published
// domain whose object is not in the listing, or is another object, is re-read. It waits for the
// publisher's startup listing.
func (p *Publisher) ObjectsListed(ctx context.Context, present map[string]types.UID) error {
	select {
	case <-p.seeded:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	var check []string
	for u, e := range p.entries {
		if e.desired != nil && !e.removed {
			e.listed, e.listedUID = true, present[u]
			e.gen++
			check = append(check, u)
		}
	}
	for u, obj := range p.seed { // objects of domains not seen yet that are already gone
		if present[u] != obj.UID {
			delete(p.seed, u)
		}
	}
	p.mu.Unlock()
	for _, u := range check {
		p.enqueue(u)
	}
	return nil
}

// takeGone moves a deletion reported by ObjectDeleted, or a listing by ObjectsListed, into the
// worker's state: the object must be re-read if it is the one this publisher knows and it went
// missing. An object created after the listing costs one needless read.
func (p *Publisher) takeGone(e *entry) {
	p.mu.Lock()
	gone, listed, listedUID := e.gone, e.listed, e.listedUID
	e.gone, e.listed, e.listedUID = "", false, ""
	p.mu.Unlock()
	if e.known && ((gone != "" && gone == e.uid) || (listed && listedUID != e.uid)) {
		e.lost = true
		p.forgetOwner()
	}
}

// recheckLost re-reads an object the watch saw go. A missing object is created again.
func (p *Publisher) recheckLost(ctx context.Context, e *entry, d *Desired) error {
	if _, err := p.nodeOwner(ctx); err != nil { // takeGone may have forgotten it
		return err
	}
	var obj v1alpha1.GuestAgentStatus
	err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.name}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		p.log.Info("GuestAgentStatus was deleted by someone else; creating it again", "namespace", e.ns,
			"name", e.name, "domainUUID", e.uuid)
		e.lost = false
		ns, name := e.ns, e.name
		p.forget(e)
		return p.create(ctx, e, d, ns, name)
	case err != nil:
		return fmt.Errorf("re-reading GuestAgentStatus %s/%s after it went missing: %w", e.ns, e.name, err)
	case obj.Spec.NodeName != p.opts.NodeName:
		e.foreign, e.checkedAt = true, p.opts.Clock()
		p.log.Info("GuestAgentStatus was adopted by another node; not writing it", "namespace", e.ns,
			"name", e.name, "domainUUID", e.uuid, "otherNode", obj.Spec.NodeName)
	default:
		p.learn(e, &obj, d) // labels or owner edited: adopt() puts them back
	}
	e.lost = false
	return nil
}

// forget drops what the publisher knew of an object that no longer exists; its history of
// executed commands is carried into the object that replaces it.
func (p *Publisher) forget(e *entry) {
	if e.applied != nil {
		e.carry = append(e.carry, e.applied.ExecutedCommands...)
	}
	e.known, e.applied, e.rejected = false, nil, nil
}
