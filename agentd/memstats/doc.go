// Package memstats owns agentd's third source of guest data besides the two agents: libvirt's
// memory statistics of every running domain (virDomainMemoryStats). They come from QEMU's
// virtio balloon device, which polls the guest's balloon driver for the guest-side figures
// (total, unused, usable, disk caches, swap in/out, page faults) when the device has a
// statistics period, and from the host (the balloon's actual size, QEMU's RSS) always.
//
// A Poller reads them on its own period and, when configured, enables the statistics period of
// domains whose balloon device has none (live only, never in the persistent definition).
// GuestAgentService (agentd/service) merges the result into the Memory group: the balloon
// statistics win when the guest reported them, else the oVirt guest agent's figures, else the
// host-side figures alone.
//
// The guest controls every guest-side figure: values are converted with saturation and never
// trusted to be consistent with each other.
package memstats
