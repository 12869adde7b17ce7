package publish

import (
	"maps"
	"slices"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// Domain identifies a libvirt domain on this node and where its GuestAgentStatus lives.
type Domain struct {
	// UUID is the libvirt domain UUID (canonical 8-4-4-4-12 hex form; upper case is accepted).
	UUID string
	// Name is the libvirt domain name, verbatim.
	Name string
	// Namespace is the resolved placement from the domain metadata; "" means the publisher's
	// default namespace.
	Namespace string
	// OptOut is true when the domain metadata asks for no GuestAgentStatus. An opted-out domain's
	// existing object (if this node owns it) is deleted.
	OptOut bool
}

// AgentState describes both agents of a domain, in source-neutral terms.
type AgentState struct {
	QGA guest.QGAState
	OGA guest.OGAState
}

// RunState is a domain's libvirt run state (Running, Paused, ShuttingDown, ShutOff, Crashed,
// PMSuspended, Unknown) and libvirt's reason for it.
type RunState struct {
	State, Reason string
}

// Desired is everything the publisher needs to write one domain's GuestAgentStatus. The service
// layer fills it; the publisher never keeps a reference to the caller's memory (Upsert copies it).
type Desired struct {
	// Domain identifies the domain and its placement.
	Domain Domain
	// Info is the merged guest data; nil groups are not published.
	Info *guest.Info
	// Sources names what supplied each group present in Info (an agent or libvirt). A group without a valid
	// source gets no dataGroups entry (its content is still published).
	Sources map[guest.Group]v1alpha1.DataSource
	// Stale marks groups whose content could not be refreshed and shows the last known value.
	Stale map[guest.Group]bool
	// Agents describes the agents' channels and health.
	Agents AgentState
	// RunState is the libvirt run state of the domain and libvirt's reason for it; nil when
	// not known.
	RunState *RunState
	// ExecutedCommands are commands executed on this domain, besides those recorded with
	// RecordExecuted (which Upsert adds). They are merged into the history already on the object
	// (union by key, newest MaxExecutedCommands kept); the history survives agentd restarts.
	ExecutedCommands []v1alpha1.ExecutedCommand

	// carried marks groups republished from the last status (set by build, see carryOver).
	carried map[guest.Group]bool
}

// deepCopy returns a copy of d that shares no memory with it.
func (d *Desired) deepCopy() *Desired {
	out := *d
	out.Info = d.Info.DeepCopy()
	out.Sources = maps.Clone(d.Sources)
	out.Stale = maps.Clone(d.Stale)
	if d.RunState != nil {
		rs := *d.RunState
		out.RunState = &rs
	}
	out.Agents.QGA.Supported = slices.Clone(d.Agents.QGA.Supported)
	out.Agents.QGA.Unsupported = slices.Clone(d.Agents.QGA.Unsupported)
	out.ExecutedCommands = make([]v1alpha1.ExecutedCommand, len(d.ExecutedCommands))
	for i := range d.ExecutedCommands {
		d.ExecutedCommands[i].DeepCopyInto(&out.ExecutedCommands[i])
	}
	return &out
}
