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
		Info:    v.Info,
		Sources: v.Sources,
		Stale:   v.Stale,
		Agents: publish.AgentState{
			QGA: publish.QGAState{
				Present:        v.QGA.Present,
				Channel:        v.QGA.Channel,
				Version:        v.QGA.Version,
				Supported:      v.QGA.Supported,
				Unsupported:    v.QGA.Unsupported,
				LastErrorClass: v.QGA.LastErrorClass,
				LastError:      v.QGA.LastError,
				Responsive:     v.QGA.Responsive,
			},
			OGA: publish.OGAState{
				Present:    v.OGA.Present,
				Channel:    v.OGA.Channel,
				APIVersion: v.OGA.APIVersion,
				Responsive: v.OGA.Responsive,
			},
		},
		ExecutedCommands: executed,
	}
}
