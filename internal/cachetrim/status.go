package cachetrim

import (
	toolscache "k8s.io/client-go/tools/cache"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// ControllerStatus returns the cache transform of the controller manager's GuestAgentStatus
// informer. Of the object it keeps what the controllers read:
//   - metadata without managedFields, annotations and ownerReferences (name, namespace, UID,
//     resourceVersion and generation for preconditions and the generation predicate; labels,
//     which agentd alone writes, for the garbage collector's node selector),
//   - the spec (domain UUID and node: scheduling and re-targeting),
//   - status.executedCommands (a command already executed is not sent again) and
//     status.release (the hand-over marker of a migration).
//
// Everything else agentd publishes (guest data, conditions, dataGroups) is dropped: it is most of
// the object, and the manager holds every GuestAgentStatus of the cluster. A cache trimmed this
// way must never be written back (the controllers only delete statuses, with preconditions).
// Objects of other types and tombstones pass unchanged.
func ControllerStatus() toolscache.TransformFunc {
	return func(in any) (any, error) {
		gas, ok := in.(*gav1.GuestAgentStatus)
		if !ok {
			return in, nil
		}
		gas.ManagedFields = nil
		gas.Annotations = nil
		gas.OwnerReferences = nil
		gas.Status = gav1.GuestAgentStatusStatus{
			ExecutedCommands: gas.Status.ExecutedCommands,
			Release:          gas.Status.Release,
		}
		return gas, nil
	}
}
