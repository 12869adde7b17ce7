package execute

import (
	"context"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
)

func qkey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// take hands out one command and releases it at once, returning "namespace/name".
func take(t *testing.T, q *fairQueue) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k, _, ok := q.next(ctx)
	if !ok {
		t.Fatal("nothing handed out")
	}
	q.done(k)
	return k.String()
}

// Namespaces take turns, then the targets of a namespace; one target keeps its order.
func TestFairQueueRoundRobin(t *testing.T) {
	q := newFairQueue()
	for _, n := range []string{"a1", "a2", "a3", "a4"} {
		q.add(qkey("a", n), "vm1")
	}
	q.add(qkey("a", "x1"), "vm2")
	q.add(qkey("b", "b1"), "vm9")
	q.add(qkey("a", "x2"), "vm2")
	q.add(qkey("c", "c1"), "vm1") // another namespace's vm1 is another target
	q.add(qkey("b", "b2"), "vm9")
	q.add(qkey("a", "a1"), "vm1") // queued already: no-op
	var got []string
	for range 9 {
		got = append(got, take(t, q))
	}
	want := []string{"a/a1", "b/b1", "c/c1", "a/x1", "b/b2", "a/a2", "a/x2", "a/a3", "a/a4"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if q.len() != 0 {
		t.Errorf("%d left queued", q.len())
	}
}

// A target has one command handed out at a time; others are served meanwhile.
func TestFairQueueOneCommandPerTarget(t *testing.T) {
	q := newFairQueue()
	q.add(qkey("a", "a1"), "vm1")
	q.add(qkey("a", "a2"), "vm1")
	q.add(qkey("a", "x1"), "vm2")
	ctx := context.Background()
	k1, _, _ := q.next(ctx)
	k2, _, _ := q.next(ctx)
	if k1 != qkey("a", "a1") || k2 != qkey("a", "x1") {
		t.Fatalf("handed out %v and %v, want a/a1 and a/x1", k1, k2)
	}
	// a/a2 waits for a/a1.
	got := make(chan types.NamespacedName, 1)
	go func() {
		k, _, _ := q.next(ctx)
		got <- k
	}()
	g := NewWithT(t)
	g.Consistently(got).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "handed out while its target runs a/a1")
	q.done(k2) // another target's end does not release vm1
	g.Consistently(got).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "handed out while its target runs a/a1")
	q.done(k1)
	g.Eventually(got).WithTimeout(5 * time.Second).Should(Receive(Equal(qkey("a", "a2"))))
}

// A command changed while handed out is queued again once done; next ends with its context.
func TestFairQueueChangedWhileRunning(t *testing.T) {
	q := newFairQueue()
	q.add(qkey("a", "a1"), "vm1")
	k, _, _ := q.next(context.Background())
	q.add(k, "vm1")
	if q.len() != 0 {
		t.Fatal("a command running was queued twice")
	}
	q.done(k)
	if q.len() != 1 || take(t, q) != "a/a1" {
		t.Fatal("a command changed while running was not queued again")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan bool)
	go func() { _, _, ok := q.next(ctx); ended <- ok }()
	cancel()
	if ok := <-ended; ok {
		t.Fatal("next handed something out after its context ended")
	}
}
