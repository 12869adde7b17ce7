package publish

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/api/v1alpha1"
)

// Release stops publishing a domain WITHOUT deleting its object: the domain migrated to another
// node, whose agentd adopts the object (same name and namespace) and moves its node label, spec
// and owner reference. Deleting here instead would race the destination's adoption and lose the
// object's identity (UID, history of executed commands).
//
// Before it forgets the domain, the publisher writes the release marker (status.release naming
// this node) on the object if it still names this node: agentd adopts only a released object,
// and the admission policy refuses any other take-over. If the migration fails and the domain
// shows up here again before another node adopted the object, Upsert publishes it again and
// removes the marker. If no agentd adopts it, the object keeps naming this node until this
// node's next startup cleanup (RemoveAllExcept) deletes it.
func (p *Publisher) Release(uuid string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	p.mu.Lock()
	e := p.entryLocked(u)
	e.removed = true
	e.gen++
	e.releaseGen = e.gen // an Upsert or Remove after this bumps gen and cancels the release
	p.forgetLocked(u)
	p.mu.Unlock()
	p.enqueue(u)
	return nil
}

// releaseObject writes the release marker on the object at e.ns/e.name if a fresh read shows that
// it names this node and is not released yet. Its resourceVersion precondition makes a
// concurrent change (a status apply, someone's edit) a retry with a fresh read.
func (p *Publisher) releaseObject(ctx context.Context, e *entry) error {
	var obj v1alpha1.GuestAgentStatus
	err := p.opts.APIReader.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.name}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading GuestAgentStatus %s/%s before releasing it: %w", e.ns, e.name, err)
	case obj.Spec.DomainUUID != e.uuid || obj.Spec.NodeName != p.opts.NodeName:
		p.log.Info("Not releasing GuestAgentStatus that names another node", "guestAgentStatus", klog.KRef(e.ns, e.name),
			"domainUUID", e.uuid, "otherNode", obj.Spec.NodeName)
		return nil
	case releasedBy(&obj, p.opts.NodeName):
		return nil
	}
	body, err := applyBody(map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "GuestAgentStatus",
		"metadata":   map[string]any{"name": e.name, "namespace": e.ns, "resourceVersion": obj.ResourceVersion},
		"status": map[string]any{"release": v1alpha1.StatusRelease{
			NodeName: p.opts.NodeName, Time: metav1.NewTime(p.opts.Clock()).Rfc3339Copy(),
		}},
	})
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("GuestAgentStatus"))
	u.SetNamespace(e.ns)
	u.SetName(e.name)
	err = p.write(ctx, e, func() error {
		return p.opts.Client.Status().Patch(ctx, u, client.RawPatch(types.ApplyPatchType, body),
			client.FieldOwner(v1alpha1.FieldOwnerAgentdRelease), client.ForceOwnership)
	})
	switch {
	case err == nil || apierrors.IsNotFound(err):
		if err == nil {
			p.log.Info("Released GuestAgentStatus for the migration's destination",
				"guestAgentStatus", klog.KRef(e.ns, e.name), "domainUUID", e.uuid)
		}
		return nil
	case isConflict(err):
		return errRetry
	}
	return fmt.Errorf("releasing GuestAgentStatus %s/%s: %w", e.ns, e.name, err)
}

// unrelease removes this node's release marker from obj, which names this node again: the domain
// came back (a failed migration) before any node adopted the object. A merge patch removes the
// marker whichever field manager wrote it; obj is updated from the answer.
func (p *Publisher) unrelease(ctx context.Context, e *entry, obj *v1alpha1.GuestAgentStatus) error {
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": obj.ResourceVersion},
		"status":   map[string]any{"release": nil},
	})
	if err != nil {
		return fmt.Errorf("encoding the release marker's removal: %w", err)
	}
	err = p.write(ctx, e, func() error {
		return p.opts.Client.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body),
			client.FieldOwner(v1alpha1.FieldOwnerAgentdRelease))
	})
	switch {
	case err == nil:
		p.log.Info("Domain is back on this node; removed the release marker of its GuestAgentStatus",
			"guestAgentStatus", klog.KRef(e.ns, e.name), "domainUUID", e.uuid)
		return nil
	case isConflict(err):
		return errRetry
	}
	return fmt.Errorf("removing the release marker of GuestAgentStatus %s/%s: %w", e.ns, e.name, err)
}

// releasedBy reports whether obj is released by node: it names node and carries node's release
// marker. Only such an object may be taken over by another node.
func releasedBy(obj *v1alpha1.GuestAgentStatus, node string) bool {
	r := obj.Status.Release
	return r != nil && r.NodeName == node && obj.Spec.NodeName == node
}
