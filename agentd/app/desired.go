package app

import (
	"guestagent.io/operator/agentd/publish"
	"guestagent.io/operator/agentd/service"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Desired turns a service View into what the publisher writes.
func Desired(v service.View, executed []gav1.ExecutedCommand) publish.Desired {
	return publish.Desired{
		Domain: publish.Domain{
			UUID:      v.Domain.UUID,
			Name:      v.Domain.Name,
			Namespace: v.Domain.Placement.Namespace,
			OptOut:    !v.Domain.Placement.Publish,
		},
		Info:             v.Info,
		Sources:          v.Sources,
		Stale:            v.Stale,
		Agents:           publish.AgentState{QGA: v.QGA, OGA: v.OGA},
		ExecutedCommands: executed,
	}
}
