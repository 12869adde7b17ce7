package install

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/execute"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/controllers"
)

// fatCommands is how many fat commands the tenant creates, each with an annotation of
// fatAnnotation bytes (the API server allows 256 KiB of annotations per object).
const (
	fatCommands   = 300
	fatAnnotation = 240 << 10
)

// TestFatCommandsCacheMemory: a tenant creates 300 commands with 240 KiB annotations for a target
// that does not exist, labelled for node-a. The manager's cache keeps none of the annotations
// (nor managedFields, nor labels) and agentd's cache on node-a keeps none of the commands (the
// controller never scheduled them there). The test logs the heap the caches take, with the
// options the code uses and with full objects as a cache without transforms would hold them.
func TestFatCommandsCacheMemory(t *testing.T) {
	startTenancy(t)
	g := NewWithT(t)
	ctx := t.Context()
	fat := strings.Repeat("x", fatAnnotation)
	for i := range fatCommands {
		cmd := &gav1.GuestAgentCommand{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("fat-%03d", i), Namespace: tenantNS,
				Labels:      map[string]string{gav1.LabelNode: "node-a", "fat": "true"},
				Annotations: map[string]string{"fat": fat},
			},
			Spec: gav1.GuestAgentCommandSpec{Target: "no-such-guest", Action: gav1.ActionPing, DeadlineSeconds: ptrTo[int32](3600)},
		}
		g.Expect(tenancy.tenant.Create(ctx, cmd)).To(Succeed())
	}
	t.Cleanup(func() {
		// Gone before the next test: the shared manager must not be busy with them there.
		ctx := context.Background()
		fatOnes := []client.DeleteAllOfOption{client.InNamespace(tenantNS), client.MatchingLabels{"fat": "true"}}
		if err := env.Client.DeleteAllOf(ctx, &gav1.GuestAgentCommand{}, fatOnes...); err != nil {
			t.Errorf("deleting the fat commands: %v", err)
		}
		NewWithT(t).Eventually(func() (int, error) {
			var l metav1.PartialObjectMetadataList
			l.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentCommandList"))
			err := env.Client.List(ctx, &l, client.InNamespace(tenantNS), client.MatchingLabels{"fat": "true"})
			return len(l.Items), err
		}).WithTimeout(time.Minute).Should(BeZero(), "fat commands left")
	})
	// The manager of the other tests reconciles these commands meanwhile; its cache is trimmed,
	// so its share of the measured heap growth is small.
	inNS := map[string]cache.Config{tenantNS: {}}
	full := cacheHeap(t, cache.Options{DefaultNamespaces: inNS})
	trimmed := controllers.CacheOptions()
	trimmed.DefaultNamespaces = inNS
	mgrItems := cacheHeap(t, trimmed)
	agentdItems := cacheHeap(t, cache.Options{DefaultNamespaces: inNS, ByObject: execute.CacheByObject("node-a")})
	t.Logf("heap of a GuestAgentCommand cache with %d commands of %d KiB annotations: full objects %s, "+
		"the manager's trimmed cache %s, agentd's cache selecting by status.nodeName %s (%d commands)",
		fatCommands, fatAnnotation>>10, mib(full.heap), mib(mgrItems.heap), mib(agentdItems.heap), len(agentdItems.items))

	g.Expect(full.items).To(HaveLen(fatCommands))
	g.Expect(mgrItems.items).To(HaveLen(fatCommands))
	for _, c := range mgrItems.items {
		g.Expect(c.Annotations).To(BeEmpty(), "the manager's cache drops annotations")
		g.Expect(c.ManagedFields).To(BeEmpty(), "the manager's cache drops managedFields")
		g.Expect(c.Labels).To(BeEmpty(), "the manager's cache drops command labels")
	}
	g.Expect(agentdItems.items).To(BeEmpty(), "agentd on node-a caches no command the controller did not schedule to it")
}

// cacheResult is what cacheHeap measured.
type cacheResult struct {
	heap  int64
	items []gav1.GuestAgentCommand
}

// cacheHeap starts a cache with opts, waits until its GuestAgentCommand informer has synced and
// returns the growth of the live heap (after a GC) and the cached commands.
func cacheHeap(t *testing.T, opts cache.Options) cacheResult {
	t.Helper()
	opts.Scheme = env.Scheme
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := cache.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	// Stop the cache before returning: its informers end with Start, so the next measurement's
	// baseline no longer holds this cache's objects.
	defer func() { cancel(); <-stopped }()
	go func() { defer close(stopped); _ = c.Start(ctx) }()
	if _, err := c.GetInformer(ctx, &gav1.GuestAgentCommand{}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	var list gav1.GuestAgentCommandList
	if err := c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	// Only the fat commands (by name: a trimmed cache holds no labels to select by).
	fat := slices.DeleteFunc(list.Items, func(c gav1.GuestAgentCommand) bool { return !strings.HasPrefix(c.Name, "fat-") })
	runtime.KeepAlive(c)
	return cacheResult{heap: int64(after.HeapAlloc) - int64(before.HeapAlloc), items: fat}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
