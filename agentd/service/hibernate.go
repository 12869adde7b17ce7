package service

import (
	"context"
	"errors"
	"sync"

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
	ch, stop := s.changes.watch(uuid)
	defer stop()
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

// changeWatchers wake waiters of a domain on Changed.
type changeWatchers struct {
	mu   sync.Mutex
	next int
	subs map[string]map[int]chan struct{}
}

// watch returns a channel that receives (coalesced) after each change of the domain, and a
// function that ends the watch.
func (w *changeWatchers) watch(uuid string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[string]map[int]chan struct{}{}
	}
	if w.subs[uuid] == nil {
		w.subs[uuid] = map[int]chan struct{}{}
	}
	id := w.next
	w.next++
	w.subs[uuid][id] = ch
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs[uuid], id)
		if len(w.subs[uuid]) == 0 {
			delete(w.subs, uuid)
		}
		w.mu.Unlock()
	}
}

// signal wakes the watchers of uuid ("" wakes all).
func (w *changeWatchers) signal(uuid string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wake := func(m map[int]chan struct{}) {
		for _, ch := range m {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	if uuid == "" {
		for _, m := range w.subs {
			wake(m)
		}
		return
	}
	wake(w.subs[uuid])
}
