// Package virt owns agentd's view of libvirt: the single connection to the local libvirtd
// (keepalive, reconnect with backoff), libvirt's default event loop, domain discovery, domain
// lifecycle and agent-lifecycle events, and everything agentd reads from a domain's live XML
// (QEMU guest agent channel state, the oVirt guest agent socket path, our placement metadata).
//
// The rest of agentd consumes it through the Watcher interface and the Domain snapshot and Event
// types, so it can be driven by the real Manager (libvirt.go, cgo), by libvirt's test:/// driver
// through the same Manager, or by the in-memory Fake in tests. All cgo/libvirt imports of agentd
// live here and in agentd/qga.
//
// # Event semantics
//
// A Handler receives Events one at a time, in order, from a single goroutine; it must not block
// for long (hand work off). Every Event carries a Domain snapshot taken after the change
// (connection events carry none).
//
//   - EventDomainAdded: agentd learned about a domain it did not know: at startup discovery,
//     after a reconnect re-listing, or when a domain is defined or first started. Lifecycle is
//     LifecycleDiscovered for listings (agentd may start long after the domain), otherwise the
//     detail of the libvirt event that revealed it.
//   - EventDomainUpdated: a known domain changed: a lifecycle transition (Lifecycle says which),
//     a live XML change (metadata/placement, channel paths), or a re-listing after a reconnect
//     (Lifecycle == LifecycleResynced; consumers should treat the snapshot as authoritative
//     because events may have been missed while disconnected).
//   - EventDomainRemoved: the domain no longer exists on this host (undefined, transient domain
//     stopped, migrated away and undefined, or absent from a re-listing). The snapshot is the last
//     one known.
//   - EventAgentChannel: the QEMU guest agent channel changed state (libvirt AGENT_LIFECYCLE, or
//     the XML bootstrap while the state was unknown). Domain.QGAChannel holds the new state.
//   - EventDeviceChanged: a device was hot-plugged (LifecycleDeviceAdded, libvirt DEVICE_ADDED)
//     or unplugged (LifecycleDeviceRemoved, DEVICE_REMOVED) in a known domain; Device is the
//     device alias, the snapshot is the last one known (not re-read: a hotplug changes none of
//     its fields that agentd uses).
//   - EventConnectionLost / EventConnectionRestored: the libvirt connection dropped / came back.
//     While lost, no events arrive and Connected() is false; a restore is always followed by a
//     re-listing (Added/Updated/Removed) with channel states re-bootstrapped.
//
// Lifecycle details map libvirt's (event, detail) pairs to what consumers act on, notably the
// oVirt guest agent lifecycle hooks: LifecycleMigratedIn is emitted when an incoming migration
// has FINISHED on this host, LifecycleMigrationFailed when an outgoing one failed and the domain
// runs here again (see Migrations), LifecycleRestored when a domain was started from a save
// image, LifecycleSuspended when it was paused, LifecycleSaved after a save to file completed.
// libvirt has no "save started" event: a managed save pauses the domain first
// (LifecycleSuspended) and then stops it (LifecycleSaved).
//
// # Migrations
//
// What libvirt 9.0 with QEMU 7.2 sends for a live migration (checked on two real daemons, see
// test/migration):
//
//   - Source, success: MIGRATION_ITERATION (≈0.5 s after the start, once per pass), SUSPENDED/
//     MIGRATED when it pauses for the final phase, STOPPED/MIGRATED ≈2 s later, JOB_COMPLETED.
//     No UNDEFINED even with --undefinesource: the domain just vanishes, sometimes before
//     agentd reads it after the STOPPED event (EventDomainRemoved/LifecycleMigratedOut),
//     sometimes after (EventDomainUpdated/LifecycleMigratedOut with the domain shut off; it
//     leaves the table at the next resync). Consumers must treat both as "migrated away".
//   - Destination, success: STARTED/MIGRATED (created paused), DEFINED (--persistent),
//     RESUMED/MIGRATED when it runs; the agent channel connects tens of ms later.
//   - Aborted while the source still ran (e.g. virDomainAbortJob during pre-copy, or the
//     destination died early): the source gets NO lifecycle event at all, only the end of its
//     job (no JOB_COMPLETED either: that one is sent for a successful job); the destination gets
//     STOPPED/FAILED. The first MIGRATION_ITERATION came 0.2–1.3 s after the start in our runs
//     (later with a low bandwidth limit): a migration aborted before it leaves no trace on the
//     source at all, and agentd reports nothing for it (the guest was never paused).
//   - Failed after the source paused: SUSPENDED/MIGRATED, then RESUMED/UNPAUSED on the source
//     (QEMU restarts the CPUs itself after a cancelled migration; libvirt's own recovery, e.g.
//     after a failed confirm phase, says RESUMED/MIGRATED with the state reason
//     MIGRATION_CANCELED); STOPPED/FAILED on the destination.
//
// So RESUMED/MIGRATED alone does not mean "arrived here". The Manager keeps a migration phase per
// domain: incoming after STARTED/MIGRATED; outgoing after MIGRATION_ITERATION or SUSPENDED/
// MIGRATED on a domain that is not incoming. A RESUMED of any detail after the source paused for
// the migration, or RESUMED/MIGRATED with the state reason MigrationCanceled, is
// LifecycleMigrationFailed; RESUMED/MIGRATED on an incoming domain (or one without any
// bookkeeping: agentd started during the migration) is LifecycleMigratedIn. For the abort while
// running, the first iteration event starts a watcher that reads the domain's job
// (virDomainGetJobInfo, every Config.MigrationJobCheckInterval) until none is active, and
// JOB_COMPLETED ends the wait early: a job that ended with the domain RUNNING here is
// LifecycleMigrationFailed (reported once: a late RESUMED of the same attempt is then a plain
// LifecycleResumed). A job that ended with the domain paused or gone is left to the lifecycle
// events (STOPPED/MIGRATED is LifecycleMigratedOut). A watcher stops with its connection; the
// listing after a reconnect and every periodic resync start it again for a domain still
// migrating out.
//
// Channel state: Domain.QGAChannel is the effective state. AGENT_LIFECYCLE events always win;
// the live XML's <target name='org.qemu.guest_agent.0' state=…/> is applied only while no event
// has been seen since the domain (re)started or the connection (re)opened. A start or stop
// resets it (a stopped domain has no channel: Unknown). Observed with libvirt 9.0: the
// "disconnected" event on a guest shutdown is racy (often not delivered), so consumers must also
// treat LifecycleStopped as the end of the agent.
package virt
