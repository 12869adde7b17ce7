package servicefake

import (
	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// AgentState is the state of one agent of a test domain, as request routing sees it.
type AgentState int

// Agent states, from least to most usable; Failing is usable but fails every request (the test
// sets FailWith).
const (
	Absent       AgentState = iota // the domain has no channel for the agent
	Down                           // channel defined, not connected
	Unresponsive                   // connected, silent (matters for OGA only)
	Up                             // connected and responsive
	Failing                        // up, but every request fails with an agent error
)

func (s AgentState) String() string {
	return [...]string{"Absent", "Down", "Unresponsive", "Up", "Failing"}[s]
}

// Domain returns a domain in state st whose agent channels match qga and oga.
func Domain(uuid, name string, st virt.State, qga, oga AgentState) virt.Domain {
	d := virt.Domain{UUID: uuid, Name: name, State: st, QGAChannel: guest.ChannelDisconnected}
	if qga != Absent {
		d.HasQGAChannel = true
	}
	if qga >= Unresponsive {
		d.QGAChannel = guest.ChannelConnected
	}
	if oga != Absent {
		d.OGASocketPath = "/run/oga/" + uuid
	}
	return d
}

// OGAState returns the oVirt agent state that matches a.
func OGAState(a AgentState) guest.OGAState {
	st := guest.OGAState{Channel: guest.ChannelDisconnected}
	if a >= Unresponsive {
		// an agent that answered once and went silent: it has spoken on this connection
		st.Channel, st.Spoken = guest.ChannelConnected, true
	}
	if a >= Up {
		st.Responsive, st.APIVersion = true, 3
	}
	return st
}
