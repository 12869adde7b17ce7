package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

func gone(ctx context.Context, obj client.Object) func() bool {
	return func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(obj), &gav1.GuestAgentStatus{}))
	}
}

// TestStatusGCOnNodeDeletion deletes the statuses of a deleted Node in every namespace, and only those.
func TestStatusGCOnNodeDeletion(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns1, ns2 := newNamespace(t), newNamespace(t)
	doomed, kept := nodeName("doomed"), nodeName("kept")
	a := createStatus(t, ns1, "vm-a", doomed)
	b := createStatus(t, ns2, "vm-b", doomed)
	c := createStatus(t, ns1, "vm-c", kept)

	g.Expect(k8s.Delete(ctx, &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: doomed},
	})).To(Succeed())
	g.Eventually(gone(ctx, a)).WithTimeout(timeout).WithPolling(poll).Should(BeTrue())
	g.Eventually(gone(ctx, b)).WithTimeout(timeout).WithPolling(poll).Should(BeTrue())
	g.Consistently(gone(ctx, c)).WithTimeout(testSweepInterval + time.Second).WithPolling(poll).Should(BeFalse())
}

// TestStatusSweep deletes statuses labelled for nodes that do not exist (a deletion missed while
// no manager ran) through the periodic sweep, and pages through the list.
func TestStatusSweep(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	live := createStatus(t, ns, "vm-live", nodeName("live"))
	var ghosts []client.Object
	for _, name := range []string{"vm-g1", "vm-g2", "vm-g3"} {
		// Create the status for an existing node, then re-label it for a node that never existed:
		// no Node event ever fires for it.
		gas := createStatus(t, ns, name, live.Spec.NodeName)
		gas.Labels[gav1.LabelNode] = nodeName("ghost")
		g.Expect(k8s.Update(ctx, gas)).To(Succeed())
		ghosts = append(ghosts, gas)
	}

	t.Run("Runnable", func(t *testing.T) {
		for _, gh := range ghosts {
			NewWithT(t).Eventually(gone(ctx, gh)).WithTimeout(timeout).WithPolling(poll).Should(BeTrue())
		}
	})

	t.Run("PagedSweep", func(t *testing.T) {
		g := NewWithT(t)
		// Without a running manager, only this sweep can delete them.
		mgr.stop()
		defer func() {
			var err error
			if mgr, err = startManager(); err != nil {
				t.Fatalf("restarting manager: %v", err)
			}
		}()
		var more []client.Object
		for _, name := range []string{"vm-g4", "vm-g5", "vm-g6"} {
			gas := createStatus(t, ns, name, live.Spec.NodeName)
			gas.Labels[gav1.LabelNode] = nodeName("ghost")
			g.Expect(k8s.Update(ctx, gas)).To(Succeed())
			more = append(more, gas)
		}
		sw := &StatusSweeper{Client: k8s, APIReader: k8s, Interval: testSweepInterval, PageSize: 1}
		n, err := sw.Sweep(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n).To(BeNumerically(">=", len(more)))
		for _, gh := range more {
			g.Expect(gone(ctx, gh)()).To(BeTrue())
		}
		g.Expect(gone(ctx, live)()).To(BeFalse())
	})

	g.Consistently(gone(ctx, live)).WithTimeout(testSweepInterval + time.Second).WithPolling(poll).Should(BeFalse())
}
