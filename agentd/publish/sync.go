package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	acv1alpha1 "guestagent.io/operator/api/applyconfiguration/api/v1alpha1"
	"guestagent.io/operator/api/v1alpha1"
)

// errRetry asks for a rate-limited retry after the object's state was refreshed.
var errRetry = errors.New("object changed under the publisher; retrying with fresh state")

// errExists says a create found the object already there; the entry's state asks for a read.
var errExists = fmt.Errorf("%w: the object exists already", errRetry)

// errStartupHeld defers a status that would regress an existing object during the startup grace.
var errStartupHeld = errors.New("status held back during the startup grace")

func isConflict(err error) bool { return apierrors.IsConflict(err) }

// isPermanent reports errors that repeat until the content changes (validation, size).
func isPermanent(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err)
}

// sync brings one domain's object to its latest desired state.
func (p *Publisher) sync(ctx context.Context, e *entry) error {
	p.mu.Lock()
	d, removed, gen := e.desired, e.removed, e.gen
	p.mu.Unlock()
	p.stats.decisions.Add(1)
	if removed || d == nil {
		return p.syncRemoved(ctx, e, gen)
	}
	if d.Domain.OptOut {
		return p.syncOptOut(ctx, e, d)
	}
	if err := p.ensureObject(ctx, e, d); err != nil || e.state == stForeign {
		return err
	}
	return p.syncStatus(ctx, e, d)
}

func (p *Publisher) target(d *Desired) (ns, name string) {
	return cmpOr(d.Domain.Namespace, p.opts.DefaultNamespace), ObjectName(d.Domain.Name, d.Domain.UUID)
}

// maxEnsureSteps bounds the transitions of one ensureObject; every path ends within fewer.
const maxEnsureSteps = 8

// ensureObject makes sure the object exists at its target place with this node's identity, driven
// by the object's lifecycle state (objstate.go): it takes over the startup listing, re-reads an
// object the watch saw go or change, moves the object on a placement change, re-reads a foreign
// object at low frequency, reads or creates it at first sight, and adopts it when it names
// another node.
func (p *Publisher) ensureObject(ctx context.Context, e *entry, d *Desired) error {
	if _, err := p.nodeOwner(ctx); err != nil { // learn compares owner references with it
		return err
	}
	ns, name := p.target(d)
	reported := false
	for range maxEnsureSteps {
		if !reported && e.state != stSeeded {
			p.takeWatchReports(e) // after the seed: a seeded object may be gone already
			reported = true
		}
		prev := e.state
		switch act := e.on(p.syncEvent(e, d, ns, name)); act {
		case actNone:
			return nil
		case actUseSeed:
			p.learn(e, e.seedObj, d)
			e.seedObj = nil
		case actReread:
			missing, err := p.recheckLost(ctx, e, d)
			if err != nil || e.state == stForeign {
				return err
			}
			if missing {
				return p.create(ctx, e, d, e.ns, e.name)
			}
		case actMove:
			if err := p.move(ctx, e, ns, name); err != nil {
				e.state = prev
				return err
			}
		case actRecheck:
			return p.recheckForeign(ctx, e, d, ns, name)
		case actCreate: // not in the startup listing: create without reading first
			if err := p.create(ctx, e, d, ns, name); !errors.Is(err, errExists) {
				return err
			} // it exists after all: the next step reads it
		case actRead:
			missing, err := p.discover(ctx, e, d, ns, name)
			if err != nil {
				return err
			}
			if missing {
				return p.create(ctx, e, d, ns, name)
			}
		case actAdopt:
			return p.adopt(ctx, e, d)
		default:
			return fmt.Errorf("GuestAgentStatus of domain %s: no %s in state %s", e.uuid, act, e.state)
		}
	}
	return fmt.Errorf("GuestAgentStatus of domain %s: lifecycle did not settle (state %s)", e.uuid, e.state)
}

// syncEvent is the event of a sync that wants the object at ns/name for d.
func (p *Publisher) syncEvent(e *entry, d *Desired, ns, name string) objEvent {
	switch {
	case e.state.located() && (e.ns != ns || e.name != name):
		return evMoved
	case e.state == stForeign && p.opts.Clock().Sub(e.checkedAt) >= p.opts.ForeignRecheck:
		return evRecheckDue
	case e.state == stOwned && e.domainName != specDomainName(d):
		return evFoundStale
	}
	return evSync
}

// recheckForeign re-reads, every ForeignRecheck, an object another node adopted while this node
// still reports the domain: if the object is gone (e.g. the other node deleted it after a failed
// migration) it is created again; if it names this node again it is used.
func (p *Publisher) recheckForeign(ctx context.Context, e *entry, d *Desired, ns, name string) error {
	e.checkedAt = p.opts.Clock()
	var obj v1alpha1.GuestAgentStatus
	err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		if e.on(evMissing) == actCreate {
			return p.create(ctx, e, d, ns, name)
		}
	case err != nil:
		return fmt.Errorf("re-reading GuestAgentStatus %s/%s: %w", ns, name, err)
	case obj.Spec.NodeName == p.opts.NodeName:
		p.learn(e, &obj, d)
	}
	return nil
}

func specDomainName(d *Desired) string {
	return truncateRunes(d.Domain.Name, 1024)
}

// learn records what the API says about the object: where it is, its version and status, and
// whether its labels, owner reference and spec are this node's and this domain's.
func (p *Publisher) learn(e *entry, obj *v1alpha1.GuestAgentStatus, d *Desired) {
	e.ns, e.name = obj.Namespace, obj.Name
	e.rv, e.uid = obj.ResourceVersion, obj.UID
	e.applied = obj.Status.DeepCopy()
	e.applied.Release = nil // not agentd's to apply (FieldOwnerAgentdRelease)
	normalizeTimes(e.applied)
	e.domainName = obj.Spec.DomainName
	// A release marker of this node on an object naming it: the domain is back, adopt() removes it.
	if p.namesThisNode(obj) && p.hasOwner(obj) && obj.Spec.DomainName == specDomainName(d) &&
		!releasedBy(obj, p.opts.NodeName) {
		e.on(evFound)
	} else {
		e.on(evFoundStale)
	}
}

func (p *Publisher) namesThisNode(obj *v1alpha1.GuestAgentStatus) bool {
	return obj.Spec.NodeName == p.opts.NodeName && obj.Labels[v1alpha1.LabelNode] == p.opts.NodeName
}

func (p *Publisher) hasOwner(obj *v1alpha1.GuestAgentStatus) bool {
	p.ownerMu.Lock()
	o := p.owner
	p.ownerMu.Unlock()
	return o != nil && slices.ContainsFunc(obj.OwnerReferences, func(r metav1.OwnerReference) bool {
		return r.Kind == "Node" && r.UID == o.uid
	})
}

// discover reads the object at its target place (first sight, or after it went missing) and
// reports whether it is missing.
func (p *Publisher) discover(ctx context.Context, e *entry, d *Desired, ns, name string) (bool, error) {
	var obj v1alpha1.GuestAgentStatus
	err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		return e.on(evMissing) == actCreate, nil
	case err != nil:
		return false, fmt.Errorf("reading GuestAgentStatus %s/%s: %w", ns, name, err)
	case obj.Spec.DomainUUID != d.Domain.UUID:
		return false, fmt.Errorf("GuestAgentStatus %s/%s belongs to domain %s, not %s", ns, name, obj.Spec.DomainUUID, d.Domain.UUID)
	}
	p.learn(e, &obj, d)
	return false, nil
}

// desiredMeta sets this node's labels, owner reference and spec on obj, keeping foreign labels
// and owner references other than Nodes.
func (p *Publisher) desiredMeta(obj *v1alpha1.GuestAgentStatus, d *Desired, owner *ownerRef) {
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	obj.Labels[v1alpha1.LabelNode] = p.opts.NodeName
	obj.Labels[v1alpha1.LabelDomainUUID] = d.Domain.UUID
	refs := slices.DeleteFunc(obj.OwnerReferences, func(r metav1.OwnerReference) bool {
		return r.APIVersion == "v1" && r.Kind == "Node"
	})
	obj.OwnerReferences = append(refs, metav1.OwnerReference{
		APIVersion: "v1", Kind: "Node", Name: owner.name, UID: owner.uid,
		Controller: ptr.To(false), BlockOwnerDeletion: ptr.To(false),
	})
	obj.Spec = v1alpha1.GuestAgentStatusSpec{
		DomainName: specDomainName(d), DomainUUID: d.Domain.UUID, NodeName: p.opts.NodeName,
	}
}

func truncateRunes(s string, n int) string {
	return (&limiter{}).str(s, n)
}

// create creates the object with spec, labels and owner; its status follows in a second write.
func (p *Publisher) create(ctx context.Context, e *entry, d *Desired, ns, name string) error {
	owner, err := p.nodeOwner(ctx)
	if err != nil {
		return err
	}
	obj := &v1alpha1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	p.desiredMeta(obj, d, owner)
	err = p.write(ctx, e, func() error {
		return p.opts.Client.Create(ctx, obj, client.FieldOwner(v1alpha1.FieldOwnerAgentd))
	})
	if apierrors.IsAlreadyExists(err) { // created concurrently (e.g. by another node): read it
		e.on(evExists)
		return errExists
	}
	if err != nil {
		return fmt.Errorf("creating GuestAgentStatus %s/%s: %w", ns, name, err)
	}
	obj.Status = v1alpha1.GuestAgentStatusStatus{}
	p.learn(e, obj, d)
	p.log.Info("Created GuestAgentStatus", "guestAgentStatus", klog.KRef(ns, name), "domainUUID", d.Domain.UUID)
	return nil
}

// adopt rewrites labels, owner reference and spec so the object names this node, with an
// optimistic lock on the version last read. This is how a migrated domain's object moves along.
func (p *Publisher) adopt(ctx context.Context, e *entry, d *Desired) error {
	owner, err := p.nodeOwner(ctx)
	if err != nil {
		return err
	}
	var obj v1alpha1.GuestAgentStatus
	if err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.name}, &obj); err != nil {
		if apierrors.IsNotFound(err) { // e.g. the other node deleted it: created next time
			e.on(evMissing)
			e.handover, e.handoverWaits = handoverNone, 0
			return errRetry
		}
		return fmt.Errorf("reading GuestAgentStatus %s/%s for adoption: %w", e.ns, e.name, err)
	}
	previous := obj.Spec.NodeName
	takeOver := previous != p.opts.NodeName
	if takeOver && !p.mayTakeOver(e, &obj) {
		return p.awaitRelease(e, previous, nil)
	}
	p.desiredMeta(&obj, d, owner)
	err = p.write(ctx, e, func() error {
		return p.opts.Client.Update(ctx, &obj, client.FieldOwner(v1alpha1.FieldOwnerAgentd))
	})
	switch {
	case isConflict(err):
		return errRetry
	case takeOver && apierrors.IsForbidden(err): // the admission policy: not released after all
		return p.awaitRelease(e, previous, err)
	case err != nil:
		return fmt.Errorf("adopting GuestAgentStatus %s/%s: %w", e.ns, e.name, err)
	}
	if releasedBy(&obj, p.opts.NodeName) {
		if err := p.unrelease(ctx, e, &obj); err != nil {
			return err
		}
	}
	reclaimed := e.handover == handoverReclaim
	e.handover, e.handoverWaits = handoverNone, 0
	p.learn(e, &obj, d)
	if takeOver {
		p.log.Info("Adopted GuestAgentStatus", "guestAgentStatus", klog.KRef(e.ns, e.name),
			"domainUUID", d.Domain.UUID, "previousNode", previous, "reclaimed", reclaimed)
	}
	return nil
}

// move deletes the object at its old place (placement or name changed); the caller recreates it,
// or for a foreign object, looks at the new place from now on.
func (p *Publisher) move(ctx context.Context, e *entry, ns, name string) error {
	if err := p.deleteOwned(ctx, e); err != nil {
		return err
	}
	p.log.Info("Moving GuestAgentStatus", "from", klog.KRef(e.ns, e.name), "guestAgentStatus", klog.KRef(ns, name))
	p.forget(e) // the history moves along
	e.ns, e.name = ns, name
	return nil
}

// syncStatus applies the status when it differs semantically from the last applied one.
func (p *Publisher) syncStatus(ctx context.Context, e *entry, d *Desired) error {
	prev := e.applied
	if len(e.carry) > 0 { // history of the object this one replaces
		prev = prev.DeepCopy()
		if prev == nil {
			prev = &v1alpha1.GuestAgentStatusStatus{}
		}
		prev.ExecutedCommands = mergeHistory(prev.ExecutedCommands, e.carry, &limiter{})
	}
	now := statusTime(p.opts.Clock())
	st := p.build.build(d, prev, now)
	if e.applied != nil && semanticEqual(st, e.applied) {
		p.stats.unchanged.Add(1)
		skippedUnchanged.Inc()
		return nil
	}
	if p.holdAtStartup(e, d, st) {
		return errStartupHeld
	}
	if e.rejected != nil {
		// Refused before: wait for new content. Compare as built at the refused attempt's time
		// (a changed group's lastChanged is "now", which would make every second look new).
		same := st
		if !now.Equal(&e.rejectedAt) {
			same = p.build.build(d, prev, e.rejectedAt)
		}
		if semanticEqual(same, e.rejected) {
			return nil
		}
	}
	rv, err := p.applyStatus(ctx, e, st)
	switch {
	case err == nil:
		e.applied, e.rv, e.rejected, e.carry, e.settled = st, rv, nil, nil, true
		return nil
	case isPermanent(err):
		e.rejected, e.rejectedAt = st, now
		p.log.Error(err, "The apiserver refused the status; not retrying until it changes",
			"guestAgentStatus", klog.KRef(e.ns, e.name), "domainUUID", e.uuid, "reason", apierrors.ReasonForError(err))
		return nil
	case isConflict(err):
		return p.refresh(ctx, e, d)
	case apierrors.IsNotFound(err):
		p.forget(e)
		e.on(evMissing)
		p.forgetOwner() // collected, maybe, because the Node was re-created
		return errRetry
	}
	return fmt.Errorf("applying status of GuestAgentStatus %s/%s: %w", e.ns, e.name, err)
}

// holdAtStartup reports whether st must wait for the end of the startup grace: the object existed
// before this Run, nothing was applied to it since, the domain runs, and st would regress what
// the object says.
func (p *Publisher) holdAtStartup(e *entry, d *Desired, st *v1alpha1.GuestAgentStatusStatus) bool {
	if e.settled || e.applied == nil || p.opts.StartupGrace < 0 ||
		(d.RunState != nil && d.RunState.State != "Running") {
		return false
	}
	return p.opts.Clock().Before(p.runAt.Add(p.opts.StartupGrace)) && regresses(e.applied, st)
}

// regresses reports whether next says less about the agents than prev: a connection or
// responsiveness condition that was True is not, or data that was current is stale.
func regresses(prev, next *v1alpha1.GuestAgentStatusStatus) bool {
	for _, t := range []string{v1alpha1.ConditionAgentConnected, v1alpha1.ConditionQemuAgentConnected,
		v1alpha1.ConditionOvirtAgentConnected, v1alpha1.ConditionAgentResponsive} {
		if meta.IsStatusConditionTrue(prev.Conditions, t) && !meta.IsStatusConditionTrue(next.Conditions, t) {
			return true
		}
	}
	return meta.IsStatusConditionFalse(prev.Conditions, v1alpha1.ConditionStale) &&
		meta.IsStatusConditionTrue(next.Conditions, v1alpha1.ConditionStale)
}

// applyStatus server-side applies st with this node's field owner, forcing ownership, and with the
// last known resourceVersion as a precondition so that an adoption by another node is noticed.
func (p *Publisher) applyStatus(ctx context.Context, e *entry, st *v1alpha1.GuestAgentStatusStatus) (string, error) {
	ac, err := statusApply(e.ns, e.name, e.rv, st)
	if err != nil {
		return "", err
	}
	body, err := applyBody(ac)
	if err != nil {
		return "", err
	}
	obj := &v1alpha1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.name}}
	err = p.write(ctx, e, func() error {
		return p.opts.Client.Status().Patch(ctx, obj, client.RawPatch(types.ApplyPatchType, body),
			client.FieldOwner(v1alpha1.FieldOwnerAgentd), client.ForceOwnership)
	})
	return obj.ResourceVersion, err
}

// statusApply returns the apply configuration of a status write: the object at ns/name at
// resourceVersion rv with status st. The status is carried over field for field through its JSON
// form, which the apply configuration types share with the API types (every field of theirs is
// optional, and st omits no field that it sets).
func statusApply(ns, name, rv string, st *v1alpha1.GuestAgentStatusStatus) (*acv1alpha1.GuestAgentStatusApplyConfiguration, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding status: %w", err)
	}
	status := &acv1alpha1.GuestAgentStatusStatusApplyConfiguration{}
	if err := json.Unmarshal(raw, status); err != nil {
		return nil, fmt.Errorf("converting status to its apply configuration: %w", err)
	}
	return acv1alpha1.GuestAgentStatus(name, ns).WithResourceVersion(rv).WithStatus(status), nil
}

// applyBody encodes an apply patch as JSON that reads the same when parsed as YAML, which is how
// the apiserver parses apply patches. JSON carries some code points verbatim that YAML folds or
// refuses: NEL (U+0085) would read back as a space, DEL and the C1 controls abort the whole
// patch, and the BOM, LS and PS are special to YAML too. Those are written as \uXXXX escapes,
// which JSON and YAML decode alike, so every guest string reads back byte for byte.
func applyBody(obj any) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding status: %w", err)
	}
	// Outside strings the encoding is ASCII, so every such code point is inside a string.
	n := 0
	for _, r := range string(raw) {
		if yamlSpecial(r) {
			n++
		}
	}
	if n == 0 {
		return raw, nil
	}
	out := make([]byte, 0, len(raw)+4*n)
	for _, r := range string(raw) {
		if yamlSpecial(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out, nil
}

// yamlSpecial reports whether YAML reads r in a double-quoted scalar differently from JSON.
func yamlSpecial(r rune) bool {
	return r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == 0xfeff
}

// refresh re-reads the object after a conflict: if another node adopted it this publisher stops
// writing it; otherwise it retries against the fresh state.
func (p *Publisher) refresh(ctx context.Context, e *entry, d *Desired) error {
	var obj v1alpha1.GuestAgentStatus
	err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.name}, &obj)
	if apierrors.IsNotFound(err) {
		p.forget(e)
		e.on(evMissing)
		p.forgetOwner() // collected, maybe, because the Node was re-created
		return errRetry
	}
	if err != nil {
		return fmt.Errorf("re-reading GuestAgentStatus %s/%s: %w", e.ns, e.name, err)
	}
	if obj.Spec.NodeName != p.opts.NodeName {
		if p.lostTo(e, &obj, d) {
			return errRetry // adopt() takes it back
		}
		return nil
	}
	p.learn(e, &obj, d)
	return errRetry
}

// syncRemoved deletes the object of a domain that left this node, then forgets the domain.
func (p *Publisher) syncRemoved(ctx context.Context, e *entry, gen uint64) error {
	if e.state == stSeeded {
		e.ns, e.name = e.seedObj.Namespace, e.seedObj.Name
	}
	p.mu.Lock()
	release, d := e.releaseGen == gen, e.desired
	p.mu.Unlock()
	prev := e.state
	located := e.state == stSeeded || e.state.located()
	if release && !located && d != nil { // released before its first sync: the object may exist
		located = true
		e.ns, e.name = p.target(d)
	}
	if located {
		e.on(evCleanup)
		remove := p.deleteOwned
		if release {
			remove = p.releaseObject
		}
		if err := remove(ctx, e); err != nil {
			e.state = prev
			return err
		}
		e.seedObj = nil
	}
	p.mu.Lock()
	if e.gen == gen {
		delete(p.entries, e.uuid)
	}
	p.mu.Unlock()
	return nil
}

// syncOptOut deletes the object of an opted-out domain once and keeps the entry.
func (p *Publisher) syncOptOut(ctx context.Context, e *entry, d *Desired) error {
	switch e.state {
	case stSeeded:
		e.ns, e.name = e.seedObj.Namespace, e.seedObj.Name
	case stUnknown: // it may exist from before the opt-out
		e.ns, e.name = p.target(d)
	}
	prev := e.state
	if e.on(evOptOut) != actDelete {
		return nil
	}
	if err := p.deleteOwned(ctx, e); err != nil {
		e.state = prev
		return err
	}
	e.seedObj, e.applied, e.rejected = nil, nil, nil
	return nil
}

// deleteOwned deletes the object at e.ns/e.name only if a fresh read shows it names this node,
// with UID and resourceVersion preconditions: if another node adopts it between the read and the
// delete, the delete fails with a conflict and the next attempt sees the adoption and keeps it.
// It returns nil once the object is gone or found not to be this node's.
func (p *Publisher) deleteOwned(ctx context.Context, e *entry) error {
	var obj v1alpha1.GuestAgentStatus
	err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.name}, &obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading GuestAgentStatus %s/%s before deleting: %w", e.ns, e.name, err)
	}
	if obj.Spec.DomainUUID != e.uuid || !p.namesThisNode(&obj) {
		p.log.Info("Not deleting GuestAgentStatus owned by another node", "guestAgentStatus", klog.KRef(e.ns, e.name),
			"domainUUID", e.uuid, "otherNode", obj.Spec.NodeName)
		return nil
	}
	err = p.write(ctx, e, func() error {
		return p.opts.Client.Delete(ctx, &obj, client.Preconditions{UID: &obj.UID, ResourceVersion: &obj.ResourceVersion})
	})
	switch {
	case err == nil || apierrors.IsNotFound(err):
		p.log.Info("Deleted GuestAgentStatus", "guestAgentStatus", klog.KRef(e.ns, e.name), "domainUUID", e.uuid)
		return nil
	case isConflict(err):
		return errRetry
	}
	return fmt.Errorf("deleting GuestAgentStatus %s/%s: %w", e.ns, e.name, err)
}

// write runs one API write under the publisher-wide token bucket and the per-object interval.
func (p *Publisher) write(ctx context.Context, e *entry, fn func() error) error {
	if err := p.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("waiting for the write rate limiter: %w", err)
	}
	e.notBefore = p.opts.Clock().Add(p.opts.MinInterval)
	err := fn()
	if !unavailable(err) {
		p.answered()
	}
	p.stats.writes.Add(1)
	statusWrites.WithLabelValues(writeResult(err)).Inc()
	return err
}
