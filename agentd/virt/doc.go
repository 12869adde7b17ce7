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
// has FINISHED on this host (RESUMED_MIGRATED or RESUMED_POSTCOPY; STARTED_MIGRATED, emitted
// when the incoming domain is created still paused, maps to LifecycleMigrationStarted),
// LifecycleRestored when a domain was started from a save image, LifecycleSuspended when it was
// paused, LifecycleSaved after a save to file completed. libvirt has no "save started" event: a
// managed save pauses the domain first (LifecycleSuspended) and then stops it (LifecycleSaved).
// Caveat: a migration that fails or is cancelled resumes the domain on the SOURCE, which libvirt
// may also report as RESUMED/MIGRATED; a consumer that saw LifecycleMigrationPaused for the
// domain on this host before should treat the following LifecycleMigratedIn as "migration
// aborted, still here".
//
// Channel state: Domain.QGAChannel is the effective state. AGENT_LIFECYCLE events always win;
// the live XML's <target name='org.qemu.guest_agent.0' state=…/> is applied only while no event
// has been seen since the domain (re)started or the connection (re)opened. A start or stop
// resets it (a stopped domain has no channel: Unknown). Observed with libvirt 9.0: the
// "disconnected" event on a guest shutdown is racy (often not delivered), so consumers must also
// treat LifecycleStopped as the end of the agent.
package virt
