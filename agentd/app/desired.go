package app

import (
	"guestagent.io/operator/agentd/publish"
	"guestagent.io/operator/agentd/service"
)

// Desired turns a service View into what the publisher writes.
func Desired(v service.View) publish.Desired {
	return publish.Desired{
		Domain: publish.Domain{
			UUID:      v.Domain.UUID,
			Name:      v.Domain.Name,
			Namespace: v.Domain.Placement.Namespace,
			OptOut:    !v.Domain.Placement.Publish,
		},
		Info:     v.Info,
		Sources:  v.Sources,
		Stale:    v.Stale,
		Agents:   publish.AgentState{QGA: v.QGA, OGA: v.OGA},
		RunState: &publish.RunState{State: v.Domain.State.String(), Reason: v.Domain.StateReason},
	}
}
