package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/cachetrim"
)

// CacheOptions are the options of the manager's cache: it stores no managedFields, no
// annotations and, of GuestAgentCommands (which tenants write), no labels; the controllers read
// neither. Of GuestAgentStatus objects, one per domain of the cluster, it keeps only the spec,
// the labels and the status fields the controllers read (cachetrim.ControllerStatus): the guest
// data agentd publishes is most of each object and no controller reads it. The manager passes
// them as ctrl.Options.Cache.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&gav1.GuestAgentCommand{}: {Transform: cachetrim.Metadata(true)},
			// The status garbage collector selects by the guestagent.io/node label; the command
			// controller reads the spec, status.executedCommands and status.release.
			&gav1.GuestAgentStatus{}: {Transform: cachetrim.ControllerStatus()},
		},
	}
}
