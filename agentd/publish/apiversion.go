package publish

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/api/v1alpha1"
)

// OvirtAPIVersion returns the negotiated oVirt agent API version persisted in a domain's
// GuestAgentStatus (written by this node before a restart, or by the source node before a
// migration), 0 when none is. The first call lists every status once (startup: one request for
// all domains); a domain unknown then (migrated in later, or the listing failed) costs one
// labelled list. An error means the version could not be read.
func (p *Publisher) OvirtAPIVersion(ctx context.Context, uuid string) (int, error) {
	p.mu.Lock()
	listed := p.apiVersions != nil
	p.mu.Unlock()
	if !listed {
		all, err := p.listAPIVersions(ctx)
		if err != nil {
			p.log.Info("Listing persisted oVirt agent API versions failed; reading them per domain", "error", err.Error())
		}
		p.mu.Lock()
		if p.apiVersions == nil {
			p.apiVersions = all
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	v, ok := p.apiVersions[uuid]
	p.mu.Unlock()
	if ok {
		return v, nil
	}
	one, err := p.listAPIVersions(ctx, client.MatchingLabels{v1alpha1.LabelDomainUUID: uuid})
	if err != nil {
		return 0, fmt.Errorf("reading the persisted oVirt agent API version of domain %s: %w", uuid, err)
	}
	return one[uuid], nil
}

// listAPIVersions lists statuses and returns their oVirt agent API versions by domain UUID (an
// empty map on error).
func (p *Publisher) listAPIVersions(ctx context.Context, opts ...client.ListOption) (map[string]int, error) {
	out := map[string]int{}
	list := &v1alpha1.GuestAgentStatusList{}
	if err := p.opts.APIReader.List(ctx, list, opts...); err != nil {
		return out, err
	}
	for _, s := range list.Items {
		if oa := s.Status.OvirtAgent; oa != nil && oa.APIVersion != nil {
			out[s.Spec.DomainUUID] = int(*oa.APIVersion)
		}
	}
	return out, nil
}
