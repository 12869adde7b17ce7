// Package agentd is the root of the node agent. Its subpackages each own one concept:
//
//   - config:  configuration (defaults, file, flags, validation)
//   - guest:   the agent-neutral model of guest data
//   - virt:    the libvirt connection, event loop, domain discovery and domain XML
//   - qga:     the QEMU guest agent poller (QemuGuestAgentPoller) and requests
//   - oga:     the oVirt guest agent (Listener, OvirtGuestAgent, GuestAgentEvents)
//   - service: GuestAgentService, which joins both agents behind one source-agnostic view
//   - publish: the GuestAgentStatus writer (server-side apply, only on change)
//   - execute: the GuestAgentCommand executor for this node (at most once)
//
// All cgo (libvirt) stays under virt and qga. The RBAC markers below are agentd's whole
// permission set; `make manifests` turns them into config/agentd/rbac/role.yaml.
package agentd

// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentstatuses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentstatuses/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentcommands,verbs=get;list;watch
// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentcommands/status,verbs=update
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
