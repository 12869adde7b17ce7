package qga

import (
	"slices"
	"time"

	"guestagent.io/operator/agentd/guest"
)

// CallError describes the last failed agent call of a domain.
type CallError struct {
	Class   ErrorClass
	Command string
	Message string
	Time    time.Time
}

// State is the poller's view of one domain's QEMU guest agent.
type State struct {
	// Channel is the virtio channel state (from libvirt events / XML).
	Channel guest.ChannelState
	// Version is the agent version from guest-info ("" while unknown).
	Version string
	// SupportedCommands are the commands guest-info lists as enabled, sorted.
	SupportedCommands []string
	// UnsupportedCommands are commands the poller would use that the agent does not offer
	// (not listed, disabled) or that libvirt/the agent rejected as unsupported. They are not
	// retried until the capabilities change or the agent reconnects.
	UnsupportedCommands []string
	// LastError is the last failed call. It is kept after later successes for diagnosis;
	// Responsive (not LastError) says whether the agent currently works.
	LastError *CallError
	// LastSuccess is the time of the last successful call.
	LastSuccess time.Time
	// Responsive is true when the last call that reached the agent succeeded.
	Responsive bool
	// FSFreeze is FreezeFrozen while the guest's filesystems are frozen (a command failed
	// because of it, or guest-fsfreeze-status said so, also right after a successful freeze
	// request: a freeze with nothing to freeze leaves the agent thawed), FreezeThawed after the
	// thaw, "" while not known.
	FSFreeze string
}

// Filesystem freeze states (State.FSFreeze).
const (
	FreezeFrozen = guest.FreezeFrozen
	FreezeThawed = guest.FreezeThawed
)

func (s State) deepCopy() State {
	s.SupportedCommands = slices.Clone(s.SupportedCommands)
	s.UnsupportedCommands = slices.Clone(s.UnsupportedCommands)
	if s.LastError != nil {
		e := *s.LastError
		s.LastError = &e
	}
	return s
}

// sameAs reports whether s and o differ in nothing but timestamps, so that a routine success
// does not count as a change.
func (s State) sameAs(o State) bool {
	if s.Channel != o.Channel || s.Version != o.Version || s.Responsive != o.Responsive || s.FSFreeze != o.FSFreeze ||
		!slices.Equal(s.SupportedCommands, o.SupportedCommands) || !slices.Equal(s.UnsupportedCommands, o.UnsupportedCommands) {
		return false
	}
	a, b := s.LastError, o.LastError
	if a == nil || b == nil {
		return a == b
	}
	return a.Class == b.Class && a.Command == b.Command && a.Message == b.Message
}
