package publish

import (
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/api/v1alpha1"
)

// NodeSelector selects the GuestAgentStatus objects of one node (label guestagent.io/node).
func NodeSelector(node string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{v1alpha1.LabelNode: node})
}

// CacheByObject returns the cache.Options.ByObject entry that restricts a controller-runtime
// cache to the GuestAgentStatus objects of node, so agentd never caches other nodes' objects:
//
//	cache.Options{ByObject: publish.CacheByObject(node)}
//
// Merge it with other ByObject entries (e.g. GuestAgentCommand) as needed.
func CacheByObject(node string) map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&v1alpha1.GuestAgentStatus{}: {Label: NodeSelector(node)},
	}
}

// ListOptions returns the options that list only node's GuestAgentStatus objects, for direct API
// reads. Add client.Limit/client.Continue for pagination.
func ListOptions(node string) []client.ListOption {
	return []client.ListOption{client.MatchingLabels{v1alpha1.LabelNode: node}}
}
