package execute

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// fairQueue orders the commands waiting to be executed on this node so that no tenant's backlog
// delays another tenant's command:
//   - namespaces take turns (round-robin over the namespaces that have queued commands), and so
//     do the targets of one namespace; the commands of one target keep their arrival order;
//   - a target has at most one command handed out at a time (the next one of that target waits
//     for done), so a domain never receives two commands at once, power actions included;
//   - a command is queued at most once: adding it again while it is queued is a no-op, and
//     while it is handed out marks it to be queued again once done (its object changed meanwhile).
//
// Bound: once a command is queued and its target is free, at most M−1 commands of other
// namespaces (M: namespaces with queued commands) and T−1 of other targets of its own namespace
// (T: its namespace's targets with queued commands, taking one turn of the namespace each) are
// handed out before it, whatever the length of their backlogs.
type fairQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	closed bool

	namespaces ring
	byNS       map[string]*nsQueue
	// state of every known key: queued (target), handed out, handed out and changed meanwhile.
	queued   map[types.NamespacedName]string
	inFlight map[types.NamespacedName]string
	dirty    map[types.NamespacedName]bool
	busy     map[types.NamespacedName]bool // targets (namespace/target) with a command handed out
}

type nsQueue struct {
	targets  ring
	byTarget map[string][]types.NamespacedName
}

// ring is a round-robin list of names: next is the index of the name whose turn comes next.
type ring struct {
	names []string
	next  int
}

// remove drops the name at index i, keeping the turn order of the others.
func (r *ring) remove(i int) {
	r.names = append(r.names[:i], r.names[i+1:]...)
	if i < r.next {
		r.next--
	}
	if r.next >= len(r.names) {
		r.next = 0
	}
}

func newFairQueue() *fairQueue {
	q := &fairQueue{
		byNS:     map[string]*nsQueue{},
		queued:   map[types.NamespacedName]string{},
		inFlight: map[types.NamespacedName]string{},
		dirty:    map[types.NamespacedName]bool{},
		busy:     map[types.NamespacedName]bool{},
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues the command key for target (a GuestAgentStatus name in key's namespace).
func (q *fairQueue) add(key types.NamespacedName, target string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if _, ok := q.inFlight[key]; ok {
		q.dirty[key] = true
		return
	}
	if _, ok := q.queued[key]; ok {
		return
	}
	q.queued[key] = target
	nq := q.byNS[key.Namespace]
	if nq == nil {
		nq = &nsQueue{byTarget: map[string][]types.NamespacedName{}}
		q.byNS[key.Namespace] = nq
		q.namespaces.names = append(q.namespaces.names, key.Namespace)
	}
	if _, ok := nq.byTarget[target]; !ok {
		nq.targets.names = append(nq.targets.names, target)
	}
	nq.byTarget[target] = append(nq.byTarget[target], key)
	q.cond.Broadcast()
}

// next blocks until a command can be handed out and returns it with its target, or returns
// false once ctx ended. The caller calls done when it finished with the command.
func (q *fairQueue) next(ctx context.Context) (types.NamespacedName, string, bool) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.closed = true
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed {
		if key, target, ok := q.pick(); ok {
			return key, target, true
		}
		q.cond.Wait()
	}
	return types.NamespacedName{}, "", false
}

// pick hands out the first command whose turn it is and whose target is free. Called locked.
func (q *fairQueue) pick() (types.NamespacedName, string, bool) {
	nss := &q.namespaces
	for i := range len(nss.names) {
		ni := (nss.next + i) % len(nss.names)
		ns := nss.names[ni]
		nq := q.byNS[ns]
		ts := &nq.targets
		for j := range len(ts.names) {
			ti := (ts.next + j) % len(ts.names)
			target := ts.names[ti]
			if q.busy[types.NamespacedName{Namespace: ns, Name: target}] {
				continue
			}
			keys := nq.byTarget[target]
			key := keys[0]
			// The turn passes to the next target of this namespace and to the next namespace.
			ts.next, nss.next = ti+1, ni+1
			if len(keys) == 1 {
				delete(nq.byTarget, target)
				ts.remove(ti)
			} else {
				nq.byTarget[target] = keys[1:]
				ts.next %= len(ts.names)
			}
			if len(ts.names) == 0 {
				delete(q.byNS, ns)
				nss.remove(ni)
			} else {
				nss.next %= len(nss.names)
			}
			delete(q.queued, key)
			q.inFlight[key] = target
			q.busy[types.NamespacedName{Namespace: ns, Name: target}] = true
			return key, target, true
		}
	}
	return types.NamespacedName{}, "", false
}

// done releases a command handed out by next (and its target); a command that changed while it
// was handed out is queued again.
func (q *fairQueue) done(key types.NamespacedName) {
	q.mu.Lock()
	target, ok := q.inFlight[key]
	if ok {
		delete(q.inFlight, key)
		delete(q.busy, types.NamespacedName{Namespace: key.Namespace, Name: target})
		q.cond.Broadcast()
	}
	again := q.dirty[key]
	delete(q.dirty, key)
	q.mu.Unlock()
	if again {
		q.add(key, target)
	}
}

// len returns the number of queued commands (not counting those handed out).
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued)
}
