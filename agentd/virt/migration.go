package virt

import (
	"context"
	"time"

	"libvirt.org/go/libvirt"
)

// migPhase is what this host knows about a live migration of one domain. See "Migrations" in the
// package documentation for the libvirt events behind it.
type migPhase uint8

const (
	// migNone: no migration of the domain is known on this host.
	migNone migPhase = iota
	// migIncoming: this host is the destination (it saw STARTED/MIGRATED).
	migIncoming
	// migOutgoing: this host is the source (it saw MIGRATION_ITERATION, or SUSPENDED/MIGRATED
	// without being the destination), and the domain has not left yet.
	migOutgoing
	// migAborted: the failure of the last outgoing migration was reported (LifecycleMigrationFailed)
	// when its job ended with the domain running here; a RESUMED event of that same attempt
	// arriving after it is a plain resume, never LifecycleMigratedIn.
	migAborted
)

var migPhaseNames = [...]string{"None", "Incoming", "Outgoing", "Aborted"}

func (p migPhase) String() string {
	if int(p) < len(migPhaseNames) {
		return migPhaseNames[p]
	}
	return "Unknown"
}

// migState is the per-domain migration bookkeeping of the Manager (guarded by Manager.mu).
type migState struct {
	phase migPhase
	// paused: the source paused the domain for the migration's final phase (SUSPENDED/MIGRATED or
	// SUSPENDED/POSTCOPY); a RESUMED on the source after it means the migration failed.
	paused bool
	// watching: a job watcher goroutine runs for the domain.
	watching bool
}

// stateMigrationCanceled is libvirt's running-state reason after it restarted the CPUs of a
// migration source whose migration failed (VIR_DOMAIN_RUNNING_MIGRATION_CANCELED).
const stateMigrationCanceled = "MigrationCanceled"

// migrationStep advances the migration bookkeeping of a domain for one libvirt lifecycle event and
// returns the Lifecycle to report instead of the plain mapping lc. snapReason is the domain's
// state reason read after the event (only used for RESUMED). It is pure: the Manager applies the
// returned state.
func migrationStep(st migState, ev libvirt.DomainEventType, detail int, lc Lifecycle, snapReason string) (Lifecycle, migState) {
	switch ev {
	case libvirt.DOMAIN_EVENT_STARTED:
		if libvirt.DomainEventStartedDetailType(detail) == libvirt.DOMAIN_EVENT_STARTED_MIGRATED {
			return lc, migState{phase: migIncoming, watching: st.watching}
		}
		return lc, migState{watching: st.watching}
	case libvirt.DOMAIN_EVENT_STOPPED:
		// migrated away, or the incoming/outgoing QEMU went: nothing of a migration is left here
		return lc, migState{watching: st.watching}
	case libvirt.DOMAIN_EVENT_SUSPENDED:
		switch libvirt.DomainEventSuspendedDetailType(detail) {
		case libvirt.DOMAIN_EVENT_SUSPENDED_MIGRATED, libvirt.DOMAIN_EVENT_SUSPENDED_POSTCOPY:
			if st.phase != migIncoming {
				st.phase, st.paused = migOutgoing, true
			}
		}
		return lc, st
	case libvirt.DOMAIN_EVENT_RESUMED:
		d := libvirt.DomainEventResumedDetailType(detail)
		migrated := d == libvirt.DOMAIN_EVENT_RESUMED_MIGRATED || d == libvirt.DOMAIN_EVENT_RESUMED_POSTCOPY
		switch {
		case st.phase == migAborted:
			// the failure was already reported when the migration job ended
			return LifecycleResumed, migState{watching: st.watching}
		case st.phase == migOutgoing && (st.paused || migrated):
			// the source runs again after pausing for the migration: libvirt 9.0 with QEMU 7.2
			// reports RESUMED/UNPAUSED (QEMU restarted the CPUs itself), libvirt's own recovery
			// RESUMED/MIGRATED
			return LifecycleMigrationFailed, migState{watching: st.watching}
		case st.phase == migOutgoing:
			// a user resume during the migration's pre-copy phase: still migrating
			return lc, st
		case migrated && st.phase == migIncoming:
			return LifecycleMigratedIn, migState{watching: st.watching}
		case migrated && snapReason == stateMigrationCanceled:
			// no bookkeeping (agentd started during the migration), but libvirt says why it runs
			return LifecycleMigrationFailed, migState{watching: st.watching}
		}
		return lc, migState{watching: st.watching}
	}
	return lc, st
}

// jobEndedStep decides what the end of a domain's job (its watcher saw no active job, or
// JOB_COMPLETED arrived) means for an outgoing migration: running here means it failed or was
// aborted while the domain still ran (libvirt sends no lifecycle event for that). failed is true
// when LifecycleMigrationFailed must be reported.
func jobEndedStep(st migState, snap Domain) (failed bool, next migState) {
	if st.phase != migOutgoing {
		return false, st
	}
	if snap.State == StateRunning {
		return true, migState{phase: migAborted}
	}
	// Paused (the final phase, post-copy) or already stopped: the lifecycle events decide.
	return false, st
}

// libvirtJobActive reports whether the domain has an active job (a migration shows as one for its
// whole run on the source).
func libvirtJobActive(conn *libvirt.Connect, uuid string) (bool, error) {
	callsLookup.Inc()
	d, err := conn.LookupDomainByUUIDString(uuid)
	if err != nil {
		return false, err
	}
	defer func() { _ = d.Free() }()
	callsJob.Inc()
	ji, err := d.GetJobInfo()
	if err != nil {
		return false, err
	}
	return ji.Type == libvirt.DOMAIN_JOB_BOUNDED || ji.Type == libvirt.DOMAIN_JOB_UNBOUNDED, nil
}

// watchJob starts (once per domain) a goroutine that checks the domain's job every
// MigrationJobCheckInterval and reports its end as a rawJobEnded event. It runs on the serve
// goroutine; the watcher stops with the connection.
func (m *Manager) watchJob(uuid, name string) {
	m.mu.Lock()
	e, ok := m.domains[uuid]
	if !ok || e.mig.watching || m.watchConn == nil {
		m.mu.Unlock()
		return
	}
	e.mig.watching = true
	ctx, conn, gen := m.watchCtx, m.watchConn, m.watchGen
	m.mu.Unlock()
	m.jobWG.Add(1)
	go func() {
		defer m.jobWG.Done()
		t := time.NewTicker(m.cfg.MigrationJobCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			active, err := m.jobActive(conn, uuid)
			if err == nil && active {
				continue
			}
			if err != nil {
				m.log.V(1).Info("Reading the migration job failed", "domain", name, "domainUUID", uuid, "error", err.Error())
			}
			m.push(rawEvent{kind: rawJobEnded, gen: gen, uuid: uuid, name: name})
			return
		}
	}()
}

// startWatchers gives the job watcher back to every domain still migrating out after a listing
// (a connection re-opened while a migration ran: the watcher stopped with the old connection).
func (m *Manager) startWatchers() {
	m.mu.Lock()
	var out []rawEvent
	for u, e := range m.domains {
		if e.mig.phase == migOutgoing && !e.mig.watching {
			out = append(out, rawEvent{uuid: u, name: e.d.Name})
		}
	}
	m.mu.Unlock()
	for _, ev := range out {
		m.watchJob(ev.uuid, ev.name)
	}
}

// handleJobEnded applies the end of a domain's job (rawJobEnded, JOB_COMPLETED).
func (m *Manager) handleJobEnded(conn *libvirt.Connect, ev rawEvent, h Handler) {
	m.mu.Lock()
	e, ok := m.domains[ev.uuid]
	if ok && ev.kind == rawJobEnded {
		e.mig.watching = false
	}
	outgoing := ok && e.mig.phase == migOutgoing
	m.mu.Unlock()
	if !outgoing {
		return
	}
	// Read the domain without touching the table: if it is gone, the STOPPED/MIGRATED event that
	// must follow reports it (as LifecycleMigratedOut, which hands its status over).
	callsLookup.Inc()
	d, err := conn.LookupDomainByUUIDString(ev.uuid)
	if err != nil {
		return
	}
	snap, err := snapshot(d)
	_ = d.Free()
	if err != nil {
		return
	}
	m.mu.Lock()
	e, ok = m.domains[ev.uuid]
	if !ok {
		m.mu.Unlock()
		return
	}
	failed, next := jobEndedStep(e.mig, snap)
	next.watching = e.mig.watching
	e.mig = next
	m.mu.Unlock()
	if failed {
		m.log.Info("Outgoing migration ended with the domain still running here", "domain", snap.Name, "domainUUID", snap.UUID)
		m.upsert(snap, LifecycleMigrationFailed, "migration job ended without the domain leaving", false, h)
	}
}

// setWatchContext records the context, connection and generation job watchers of the current
// connection use (nil ctx: none may start).
func (m *Manager) setWatchContext(ctx context.Context, conn *libvirt.Connect, gen uint64) {
	m.mu.Lock()
	m.watchCtx, m.watchConn, m.watchGen = ctx, conn, gen
	if conn == nil {
		for _, e := range m.domains {
			e.mig.watching = false
		}
	}
	m.mu.Unlock()
}

// handleIteration applies MIGRATION_ITERATION: only a migration source gets it (≈0.5 s after the
// migration started, the earliest sign of it there). It starts the domain's job watcher.
func (m *Manager) handleIteration(conn *libvirt.Connect, ev rawEvent, h Handler) {
	m.mu.Lock()
	_, known := m.domains[ev.uuid]
	m.mu.Unlock()
	if !known {
		m.refresh(conn, ev.uuid, LifecycleNone, "migration event for unknown domain", h)
	}
	m.mu.Lock()
	e, ok := m.domains[ev.uuid]
	if !ok || e.mig.phase == migIncoming || e.mig.phase == migOutgoing {
		m.mu.Unlock()
		if ok {
			m.watchJob(ev.uuid, ev.name)
		}
		return
	}
	from := e.mig.phase
	e.mig.phase, e.mig.paused = migOutgoing, false
	m.mu.Unlock()
	m.log.Info("Domain migration phase changed", "domain", ev.name, "domainUUID", ev.uuid, "from", from.String(), "to", migOutgoing.String(), "reason", "libvirt MIGRATION_ITERATION")
	m.watchJob(ev.uuid, ev.name)
}

// refreshLifecycle is refresh for a libvirt lifecycle event: it re-reads the domain, advances its
// migration bookkeeping (migrationStep, which may replace lc) and emits what that implies.
func (m *Manager) refreshLifecycle(conn *libvirt.Connect, ev rawEvent, lc Lifecycle, reason string, h Handler) {
	callsLookup.Inc()
	d, err := conn.LookupDomainByUUIDString(ev.uuid)
	var snap Domain
	if err == nil {
		snap, err = snapshot(d)
		_ = d.Free()
	}
	gone := err != nil && isNoDomain(err)
	if err != nil && !gone {
		m.log.V(1).Info("Reading domain failed", "domainUUID", ev.uuid, "error", err.Error())
		return
	}
	// libvirt sends STOPPED before it drops a transient domain from its list (seen for the
	// source of a migration with --undefinesource): a stopped transient domain is gone.
	if !gone && ev.event == libvirt.DOMAIN_EVENT_STOPPED && !snap.Persistent {
		gone = true
	}
	m.mu.Lock()
	var st migState
	if e, ok := m.domains[ev.uuid]; ok {
		st = e.mig
	}
	m.mu.Unlock()
	lc2, next := migrationStep(st, ev.event, ev.detail, lc, snap.StateReason)
	if next.phase != st.phase {
		m.log.Info("Domain migration phase changed", "domain", ev.name, "domainUUID", ev.uuid,
			"from", st.phase.String(), "to", next.phase.String(), "reason", reason)
	}
	if lc2 == LifecycleMigrationFailed {
		m.log.Info("Outgoing migration failed; the domain runs here again", "domain", ev.name, "domainUUID", ev.uuid, "reason", reason)
	}
	if gone {
		m.remove(ev.uuid, lc2, reason, h)
		return
	}
	m.upsert(snap, lc2, reason, false, h)
	m.mu.Lock()
	if e, ok := m.domains[ev.uuid]; ok {
		next.watching = e.mig.watching
		e.mig = next
	}
	m.mu.Unlock()
	if next.phase == migOutgoing {
		m.watchJob(ev.uuid, ev.name)
	}
}

// MigratingOut reports whether this host knows the domain as the source of a migration in
// progress (it saw a MIGRATION_ITERATION or the migration's pause, and neither the domain's
// departure nor the migration's failure yet). For diagnostics and tests.
func (m *Manager) MigratingOut(uuid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.domains[uuid]
	return ok && e.mig.phase == migOutgoing
}
