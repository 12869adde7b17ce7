// Package qga owns agentd's QEMU guest agent support: the per-node QemuGuestAgentPoller
// (capability gating from guest-info, per-group schedules, boot window, timeouts, throttling,
// bounded worker pool), the translation of every QGA reply into the agent-neutral guest.Info,
// the QGA request methods used by the command executor (shutdown, reboot, fsfreeze/thaw,
// set-time, ping), and the classification of agent errors.
//
// The poller talks to guests only through DomainAPI. LibvirtAPI (libvirt.go) implements it with
// typed libvirt calls (one GetGuestInfo type bit per call, ListAllInterfaceAddresses(SRC_AGENT),
// GetGuestVcpus, ShutdownFlags/Reboot(GUEST_AGENT), PMSuspendForDuration, FSFreeze/FSThaw, SetTime) and raw
// QemuAgentCommand only where libvirt has no typed API (guest-info, guest-get-devices,
// guest-ping). SocketAPI implements it over qgaclient for agents reached on a unix socket
// without libvirt. Tests use an in-memory fake.
//
// The reply types in types.go mirror the QGA wire format (JSON field names), so replies from
// either transport go through the same translations (translate.go).
package qga
