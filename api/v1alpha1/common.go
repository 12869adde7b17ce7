package v1alpha1

// Labels, annotations and well-known names shared by agentd and the controllers.
const (
	// LabelNode carries the name of the node whose agentd owns a GuestAgentStatus, or on a
	// GuestAgentCommand the node that must execute it (set by the controller).
	LabelNode = "guestagent.io/node"
	// LabelDomainUUID carries the libvirt domain UUID of a GuestAgentStatus.
	LabelDomainUUID = "guestagent.io/domain-uuid"

	// MetadataNamespaceURI is the XML namespace of the libvirt domain metadata element that
	// places a domain's GuestAgentStatus: <ga:placement xmlns:ga="…" namespace="tenant-a"/>,
	// or opts the domain out with <ga:placement … publish="false"/>.
	MetadataNamespaceURI = "http://guestagent.io/xmlns/libvirt/v1"

	// FieldOwnerAgentd is the server-side apply field manager of agentd.
	FieldOwnerAgentd = "agentd"
	// FieldOwnerAgentdRelease is the field manager by which agentd writes (and removes) the
	// release marker status.release of a GuestAgentStatus. It owns nothing else, so the status
	// applies of FieldOwnerAgentd, which omit the marker, never remove it, and an apply by this
	// manager never touches the rest of the status.
	FieldOwnerAgentdRelease = "agentd-release"
	// FieldOwnerController is the field manager of the controller manager.
	FieldOwnerController = "guestagent-controller"
)

// AgentType names one of the two guest agents, or a host-side mechanism standing in for them.
// +kubebuilder:validation:Enum=QemuGuestAgent;OvirtGuestAgent;ACPI
type AgentType string

const (
	// AgentQemu is the QEMU guest agent (qemu-ga), reached through libvirt.
	AgentQemu AgentType = "QemuGuestAgent"
	// AgentOvirt is the oVirt guest agent, reached over its virtio-serial unix socket.
	AgentOvirt AgentType = "OvirtGuestAgent"
	// AgentACPI is libvirt's ACPI power button: a host-side fallback, not an agent.
	AgentACPI AgentType = "ACPI"
)

// DataSource names where a group of published guest data came from: one of the two guest
// agents, or libvirt itself (the hypervisor's own figures, such as the balloon driver's memory
// statistics). It is kept apart from AgentType, which routes commands: libvirt is a data
// source, never a command target.
// +kubebuilder:validation:Enum=QemuGuestAgent;OvirtGuestAgent;Libvirt
type DataSource string

const (
	// SourceQemu is the QEMU guest agent.
	SourceQemu DataSource = "QemuGuestAgent"
	// SourceOvirt is the oVirt guest agent.
	SourceOvirt DataSource = "OvirtGuestAgent"
	// SourceLibvirt is libvirt: memory statistics of QEMU's balloon device and the host.
	SourceLibvirt DataSource = "Libvirt"
)
