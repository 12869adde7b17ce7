package service

import (
	"context"
	"errors"

	"guestagent.io/operator/agentd/guest"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// ErrNoSave is returned when agentd has no libvirt managed save (libvirt disabled).
var ErrNoSave = errors.New("no host-side save (libvirt) is configured")

// ManagedSave takes the host-side step of a Hibernate: libvirt's managed save of the domain. Like
// the host steps of a power policy it takes no agent lock.
func (s *GuestAgentService) ManagedSave(ctx context.Context, uuid string) error {
	if s.opts.Save == nil {
		return ErrNoSave
	}
	if _, ok := s.View(uuid); !ok {
		return execErr(gav1.ReasonDomainNotFound, "domain %s is not on this node", uuid)
	}
	return s.opts.Save.ManagedSave(ctx, uuid)
}

// HasManagedSaveImage reports whether libvirt holds a managed save image of the domain.
func (s *GuestAgentService) HasManagedSaveImage(ctx context.Context, uuid string) (bool, error) {
	if s.opts.Save == nil {
		return false, ErrNoSave
	}
	return s.opts.Save.HasManagedSaveImage(ctx, uuid)
}

// WaitSessionLocked waits until the domain's guest session, as the oVirt guest agent reports it,
// is Locked or LoggedOff (VDSM's wait after lock-screen before a hibernation), at most until ctx
// ends; it then returns the last state seen and ctx's error. It wakes up on every change of the
// domain's data, never by polling.
func (s *GuestAgentService) WaitSessionLocked(ctx context.Context, uuid string) (guest.SessionState, error) {
	ch := make(chan struct{}, 1) // coalesced: one pending wake-up is enough
	defer s.changes.add(uuid, ch)()
	for {
		v, ok := s.View(uuid)
		if !ok {
			return "", execErr(gav1.ReasonDomainNotFound, "domain %s is not on this node", uuid)
		}
		st := guest.SessionUnknown
		if v.Info != nil && v.Info.Session != nil && v.Info.Session.State != "" {
			st = v.Info.Session.State
		}
		if st == guest.SessionLocked || st == guest.SessionLoggedOff {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}
