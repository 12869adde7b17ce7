package oga

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
)

// GuestAgentEvents turns VM lifecycle events into OGA lifecycle hooks (§5 of the protocol
// reference), for a caller driven by libvirt domain events.
//
//   - BeforeMigration / BeforeHibernation send the hook with a reply_id and wait (up to
//     ReplyTimeout, VDSM's 10 s) for the guest's completion when the agent can reply (responsive
//     and API ≥ 3); otherwise they send it fire-and-forget.
//   - AfterMigration / AfterHibernation are fire-and-forget; failed=true adds "failure": true
//     (the VDSM *_failure variants, sent on the source after a failed migration/hibernation).
//
// Like VDSM's send_lifecycle_event, an agent below API 3 gets nothing and the method returns nil;
// so does a domain that is unknown or not connected (the hook is best effort). Only a wait that
// ended without completion is reported, as an error matching ErrNoCompletion, so the caller can
// log it and go on (VDSM simply goes on).
type GuestAgentEvents struct {
	l            *Listener
	log          logr.Logger
	replyTimeout time.Duration
}

// NewGuestAgentEvents returns a GuestAgentEvents sending through l. replyTimeout ≤ 0 means
// the Listener's Timing.CompletionTimeout (10 s by default).
func NewGuestAgentEvents(l *Listener, log logr.Logger, replyTimeout time.Duration) *GuestAgentEvents {
	if replyTimeout <= 0 {
		replyTimeout = l.timing.CompletionTimeout
	}
	return &GuestAgentEvents{l: l, log: log, replyTimeout: replyTimeout}
}

// BeforeMigration runs the guest's before_migration hooks on the migration source and waits for
// them (see the type comment).
func (e *GuestAgentEvents) BeforeMigration(ctx context.Context, domainUUID string) error {
	return e.before(ctx, domainUUID, HookBeforeMigration)
}

// BeforeHibernation runs the guest's before_hibernation hooks before saving the VM's state and
// waits for them. (VDSM additionally sends lock-screen and waits for the session to be Locked;
// that belongs to the caller's hibernation flow: see OvirtGuestAgent.LockScreen.)
func (e *GuestAgentEvents) BeforeHibernation(ctx context.Context, domainUUID string) error {
	return e.before(ctx, domainUUID, HookBeforeHibernation)
}

// AfterMigration runs the after_migration hooks: failed=false on the destination once the VM
// runs there, failed=true on the source after a failed migration.
func (e *GuestAgentEvents) AfterMigration(ctx context.Context, domainUUID string, failed bool) error {
	return e.after(ctx, domainUUID, HookAfterMigration, failed)
}

// AfterHibernation runs the after_hibernation hooks: failed=false after a restore, failed=true
// after a failed hibernation.
func (e *GuestAgentEvents) AfterHibernation(ctx context.Context, domainUUID string, failed bool) error {
	return e.after(ctx, domainUUID, HookAfterHibernation, failed)
}

func (e *GuestAgentEvents) before(ctx context.Context, domainUUID, hook string) error {
	a := e.l.Agent(domainUUID)
	if a == nil {
		return nil
	}
	st := a.State()
	canReply := st.Responsive && st.APIVersion >= 3
	return e.filter(a, hook, a.LifecycleEvent(ctx, hook, false, canReply, e.replyTimeout))
}

func (e *GuestAgentEvents) after(ctx context.Context, domainUUID, hook string, failed bool) error {
	a := e.l.Agent(domainUUID)
	if a == nil {
		return nil
	}
	return e.filter(a, hook, a.LifecycleEvent(ctx, hook, failed, false, 0))
}

func (e *GuestAgentEvents) filter(a *OvirtGuestAgent, hook string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoCompletion):
		return err
	case errors.Is(err, ErrUnsupportedByGuestVersion), errors.Is(err, ErrNotConnected):
		e.log.V(1).Info("Guest lifecycle hook not sent", "domainUUID", a.uuid, "hook", hook, "error", err.Error())
		return nil
	}
	e.log.Info("Guest lifecycle hook failed", "domainUUID", a.uuid, "hook", hook, "error", err.Error())
	return nil
}
