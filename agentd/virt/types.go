package virt

import (
	"context"

	"guestagent.io/operator/agentd/guest"
)

// Channel names of the guest agents as they appear in <channel><target name=…/>.
const (
	// QGAChannelName is the QEMU guest agent's virtio-serial port.
	QGAChannelName = "org.qemu.guest_agent.0"
	// OGAChannelName is the oVirt guest agent's virtio-serial port.
	OGAChannelName = "ovirt-guest-agent.0"
	// OGALegacyChannelName is the oVirt guest agent's legacy (RHEV) port name.
	OGALegacyChannelName = "com.redhat.rhevm.vdsm"
)

// State is a domain's run state, reduced from libvirt's virDomainState.
type State int

// Domain states.
const (
	StateUnknown State = iota
	// StateRunning: running (libvirt RUNNING or BLOCKED).
	StateRunning
	// StatePaused: paused by a user, for migration, on I/O error, ... The guest does not run.
	StatePaused
	// StateShuttingDown: a shutdown is in progress.
	StateShuttingDown
	// StateShutOff: not running (only persistent domains stay known in this state).
	StateShutOff
	// StateCrashed: crashed and kept by its on_crash policy.
	StateCrashed
	// StatePMSuspended: suspended by the guest's power management (S3/S4).
	StatePMSuspended
)

var stateNames = [...]string{"Unknown", "Running", "Paused", "ShuttingDown", "ShutOff", "Crashed", "PMSuspended"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "Unknown"
	}
	return stateNames[s]
}

// Active reports whether QEMU runs for the domain (running, paused, shutting down, PM-suspended).
func (s State) Active() bool {
	return s == StateRunning || s == StatePaused || s == StateShuttingDown || s == StatePMSuspended
}

// Placement is our libvirt metadata element
// <ga:placement xmlns:ga="http://guestagent.io/xmlns/libvirt/v1" namespace="…" publish="…"/>.
type Placement struct {
	// Namespace overrides agentd's default namespace for the domain's GuestAgentStatus.
	// Empty means "use the default".
	Namespace string
	// Publish is false when the domain opted out (publish="false"). Absent element or attribute
	// means true.
	Publish bool
}

// Domain is a snapshot of one libvirt domain as agentd sees it. It is a value: copies share
// nothing.
type Domain struct {
	UUID  string
	Name  string
	State State
	// StateReason is libvirt's reason for State in CamelCase (e.g. "User" or "Migration" for
	// Paused, "Destroyed" for ShutOff); "Unknown" when libvirt gives none or one this side does
	// not know.
	StateReason string
	// Persistent is false for transient domains (they vanish when they stop).
	Persistent bool
	// HasQGAChannel reports whether the domain defines an org.qemu.guest_agent.0 channel.
	HasQGAChannel bool
	// QGAChannelHint is the state attribute of the QGA channel target in the live XML
	// (Unknown when absent). It is only a bootstrap hint.
	QGAChannelHint guest.ChannelState
	// QGAChannel is the effective QGA channel state: the last AGENT_LIFECYCLE event, or the XML
	// hint while no event has been seen since the domain started or the connection (re)opened.
	QGAChannel guest.ChannelState
	// OGASocketPath is the host path of the oVirt guest agent's unix socket from the XML
	// (ovirt-guest-agent.0, else com.redhat.rhevm.vdsm); empty when the domain has none.
	OGASocketPath string
	// OGAChannelName is the channel name OGASocketPath belongs to.
	OGAChannelName string
	// Placement is parsed from our metadata element.
	Placement Placement
	// QGASocket is set for a domain libvirt does not run: the host path of its QEMU guest
	// agent's unix socket, which agentd talks to directly (agentd/qgasock). Such a domain has no
	// libvirt run state, lifecycle events or host-side actions (ACPI power button, destroy,
	// libvirt statistics). Empty for libvirt domains.
	QGASocket string
	// Balloon is true when the domain has a memory balloon device; BalloonStatsPeriod is the
	// balloon statistics period (seconds) in the live XML when the snapshot was taken (0: the
	// guest's balloon driver is not polled, so only the host-side figures exist).
	Balloon            bool
	BalloonStatsPeriod int
}

// Libvirt reports whether libvirt runs the domain (false for a direct QGA socket domain).
func (d Domain) Libvirt() bool { return d.QGASocket == "" }

// EventType classifies an Event. See the package documentation for the semantics.
type EventType int

// Event types.
const (
	EventDomainAdded EventType = iota + 1
	EventDomainUpdated
	EventDomainRemoved
	EventAgentChannel
	EventConnectionLost
	EventConnectionRestored
	// EventDeviceChanged: a device was hot-plugged into or unplugged from a running domain
	// (Lifecycle is LifecycleDeviceAdded or LifecycleDeviceRemoved, Device the device alias).
	EventDeviceChanged
)

var eventNames = map[EventType]string{
	EventDomainAdded: "DomainAdded", EventDomainUpdated: "DomainUpdated", EventDomainRemoved: "DomainRemoved",
	EventAgentChannel: "AgentChannel", EventConnectionLost: "ConnectionLost", EventConnectionRestored: "ConnectionRestored",
	EventDeviceChanged: "DeviceChanged",
}

func (t EventType) String() string {
	if n, ok := eventNames[t]; ok {
		return n
	}
	return "Unknown"
}

// Lifecycle is the lifecycle detail of a domain event.
type Lifecycle int

// Lifecycle details. The libvirt (event/detail) each one comes from is given in brackets.
const (
	LifecycleNone Lifecycle = iota
	// LifecycleDiscovered: found by a listing at startup (not a transition).
	LifecycleDiscovered
	// LifecycleResynced: re-read by a listing after a reconnect or periodic resync.
	LifecycleResynced
	// LifecycleDefined: defined or its persistent config updated [DEFINED/*].
	LifecycleDefined
	// LifecycleUndefined: undefined [UNDEFINED/*]; a running domain becomes transient.
	LifecycleUndefined
	// LifecycleStarted: freshly booted [STARTED/BOOTED].
	LifecycleStarted
	// LifecycleMigrationStarted: incoming migration created the domain, still paused
	// [STARTED/MIGRATED]. The guest is not usable yet.
	LifecycleMigrationStarted
	// LifecycleMigratedIn: incoming migration finished, the guest runs here
	// [RESUMED/MIGRATED, RESUMED/POSTCOPY on the destination].
	LifecycleMigratedIn
	// LifecycleRestored: started from a save image [STARTED/RESTORED].
	LifecycleRestored
	// LifecycleFromSnapshot: started or reverted from a snapshot [STARTED/FROM_SNAPSHOT, …].
	LifecycleFromSnapshot
	// LifecycleWokeUp: woke up from PM suspend [STARTED/WAKEUP, PMSUSPENDED → running].
	LifecycleWokeUp
	// LifecycleSuspended: paused [SUSPENDED/PAUSED, IOERROR, WATCHDOG, API_ERROR, …].
	LifecycleSuspended
	// LifecycleMigrationPaused: paused on the source for the final migration phase
	// [SUSPENDED/MIGRATED, SUSPENDED/POSTCOPY].
	LifecycleMigrationPaused
	// LifecycleResumed: unpaused [RESUMED/UNPAUSED, RESUMED/FROM_SNAPSHOT].
	LifecycleResumed
	// LifecycleShuttingDown: the guest finished its shutdown sequence (or the host asked it
	// to), QEMU stops next [SHUTDOWN/*].
	LifecycleShuttingDown
	// LifecycleStopped: stopped by shutdown, destroy or failure [STOPPED/SHUTDOWN, DESTROYED,
	// FAILED, FROM_SNAPSHOT].
	LifecycleStopped
	// LifecycleCrashed: stopped or kept after a guest crash [STOPPED/CRASHED, CRASHED/*].
	LifecycleCrashed
	// LifecycleSaved: stopped after its memory was saved to a file [STOPPED/SAVED].
	LifecycleSaved
	// LifecycleMigratedOut: stopped on this host because it migrated away [STOPPED/MIGRATED].
	LifecycleMigratedOut
	// LifecyclePMSuspended: suspended by guest power management [PMSUSPENDED/*].
	LifecyclePMSuspended
	// LifecycleRebooted: the guest reset/rebooted without stopping (REBOOT event).
	LifecycleRebooted
	// LifecycleMetadataChanged: our metadata (or other live XML) changed (METADATA_CHANGE).
	LifecycleMetadataChanged
	// LifecycleDeviceAdded: a device was hot-plugged [DEVICE_ADDED].
	LifecycleDeviceAdded
	// LifecycleDeviceRemoved: a device was hot-unplugged [DEVICE_REMOVED].
	LifecycleDeviceRemoved
	// LifecycleMigrationFailed: an outgoing migration of the domain failed or was aborted and the
	// domain runs on this host (the source) again [RESUMED/* after SUSPENDED/MIGRATED on the
	// source, or the source's migration job ended while the domain kept running: see
	// "Migrations" in the package documentation].
	LifecycleMigrationFailed
)

var lifecycleNames = [...]string{"None", "Discovered", "Resynced", "Defined", "Undefined", "Started",
	"MigrationStarted", "MigratedIn", "Restored", "FromSnapshot", "WokeUp", "Suspended", "MigrationPaused",
	"Resumed", "ShuttingDown", "Stopped", "Crashed", "Saved", "MigratedOut", "PMSuspended", "Rebooted",
	"MetadataChanged", "DeviceAdded", "DeviceRemoved", "MigrationFailed"}

func (l Lifecycle) String() string {
	if l < 0 || int(l) >= len(lifecycleNames) {
		return "Unknown"
	}
	return lifecycleNames[l]
}

// Event is one change delivered to a Handler.
type Event struct {
	Type EventType
	// Domain is the snapshot after the change (zero for connection events; last known for
	// EventDomainRemoved).
	Domain Domain
	// Lifecycle is the detail of a domain event (LifecycleNone for channel/connection events).
	Lifecycle Lifecycle
	// Reason is a short human-readable origin, e.g. "libvirt STOPPED/SHUTDOWN", for logs.
	Reason string
	// Device is the alias of the hot(un)plugged device (EventDeviceChanged only).
	Device string
}

// Handler consumes Events. It is called from one goroutine, in order; it must not block long.
type Handler func(Event)

// Watcher is what the rest of agentd needs from the libvirt side. Manager implements it
// against libvirtd (or the test:/// driver); Fake implements it in memory.
type Watcher interface {
	// Run connects, discovers, delivers events to h until ctx is done, reconnecting as needed.
	// It returns nil when ctx is cancelled. Run must be called once.
	Run(ctx context.Context, h Handler) error
	// Connected reports whether the libvirt connection is currently open and registered.
	Connected() bool
	// Synced reports whether the listing of all domains after the current connection was made
	// and delivered to the handler: from then on Domains() is complete.
	Synced() bool
	// Domains returns snapshots of all known domains.
	Domains() []Domain
	// Domain returns the snapshot of one domain by UUID.
	Domain(uuid string) (Domain, bool)
}
