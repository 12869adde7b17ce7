package guest

// Filesystem freeze states (QGAState.FSFreeze).
const (
	FreezeFrozen = "Frozen"
	FreezeThawed = "Thawed"
)

// QGAState is the state of a domain's QEMU guest agent, in source-neutral terms: what the
// service reports and the publisher writes.
type QGAState struct {
	// Present is true when the domain defines a QEMU guest agent channel.
	Present bool
	// Channel is the channel state (libvirt's AGENT_LIFECYCLE events, bootstrapped from the XML).
	Channel ChannelState
	// Version is the agent version from guest-info; empty until known.
	Version string
	// Supported and Unsupported are the commands agentd uses that the agent has or lacks.
	Supported, Unsupported []string
	// LastErrorClass classifies the last failed call ("" when the agent currently works): one of
	// Timeout, NotConnected, Unsupported, AgentError, DomainNotRunning, LibvirtError.
	LastErrorClass string
	// LastError is the last failure's message.
	LastError string
	// Responsive is true when the agent answered recently.
	Responsive bool
	// FSFreeze is "Frozen" while the guest's filesystems are frozen, "Thawed" after a thaw,
	// "" while not known.
	FSFreeze string
}

// OGAState is the state of a domain's oVirt guest agent.
type OGAState struct {
	// Present is true when the domain defines an oVirt guest agent channel (and OGA is enabled).
	Present bool
	// Channel is the socket connection state.
	Channel ChannelState
	// Spoken is true once the agent sent a valid message on the current connection. The channel
	// of an oVirt VM is open whether or not an agent is installed in the guest: an agent is
	// present only after it has spoken.
	Spoken bool
	// APIVersion is the negotiated protocol version (0-3).
	APIVersion int
	// Responsive is true when the agent sent a valid message recently.
	Responsive bool
}
