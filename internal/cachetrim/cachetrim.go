// Package cachetrim keeps informer caches small: the transforms here drop, before an object is
// stored, the metadata the operator's code never reads. Tenants write GuestAgentCommands, and an
// object's annotations alone may hold 256 KiB, so a cache of full objects grows with whatever a
// tenant chooses to store; a trimmed cache grows only with the fields the code uses.
package cachetrim

import (
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
)

// Metadata returns a cache transform that drops managedFields and annotations and, with
// dropLabels, labels. Objects the transform does not know (tombstones, non-objects) pass
// unchanged.
func Metadata(dropLabels bool) toolscache.TransformFunc {
	return func(in any) (any, error) {
		obj, err := meta.Accessor(in)
		if err != nil {
			return in, nil
		}
		obj.SetManagedFields(nil)
		obj.SetAnnotations(nil)
		if dropLabels {
			obj.SetLabels(nil)
		}
		return in, nil
	}
}
