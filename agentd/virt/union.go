package virt

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Union joins several Watchers (e.g. libvirt and the direct QGA sockets of agentd/qgasock) into
// one. Each member runs in its own goroutine; their events reach the handler one at a time, in
// each member's order. A domain UUID belongs to one member: when two members know the same
// UUID, that is a configuration conflict. The earlier member in the list wins, the conflict is
// logged as an error when it starts and when it ends, and the later member's snapshot is hidden
// while the conflict lasts (and delivered again, as an update, when the earlier member drops the
// domain). A later member starts only once every earlier one is synced (or after StartWait), so
// that at startup a conflict is settled before the later member's domain is ever delivered.
type Union struct {
	members []Watcher
	log     logr.Logger
	// StartWait bounds how long a member waits for the earlier ones to sync before it starts
	// anyway (e.g. libvirtd is down: the socket domains must not wait for it forever).
	StartWait time.Duration

	hmu sync.Mutex // serialises delivery to the handler

	mu        sync.Mutex
	known     []map[string]Domain // per member: the domains it reported
	owner     map[string]int      // UUID → member whose snapshot is delivered
	conflicts map[string]bool
}

var _ Watcher = (*Union)(nil)

// NewUnion returns a Union of members; on a UUID conflict the earlier member wins.
func NewUnion(log logr.Logger, members ...Watcher) *Union {
	u := &Union{members: members, log: log, StartWait: 30 * time.Second, owner: map[string]int{}, conflicts: map[string]bool{}}
	for range members {
		u.known = append(u.known, map[string]Domain{})
	}
	return u
}

// Run implements Watcher: it runs every member until ctx is done.
func (u *Union) Run(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup
	errs := make([]error, len(u.members))
	for i, m := range u.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !u.awaitEarlier(ctx, i) {
				return
			}
			errs[i] = m.Run(ctx, func(ev Event) { u.deliver(i, ev, h) })
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// awaitEarlier waits until the members before i are synced, StartWait passed or ctx ended
// (false).
func (u *Union) awaitEarlier(ctx context.Context, i int) bool {
	deadline := time.NewTimer(u.StartWait)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		synced := true
		for _, m := range u.members[:i] {
			synced = synced && m.Synced()
		}
		if synced {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			u.log.Info("Starting a domain source before the earlier ones are synced", "waited", u.StartWait)
			return true
		case <-poll.C:
		}
	}
}

func (u *Union) deliver(i int, ev Event, h Handler) {
	u.hmu.Lock()
	defer u.hmu.Unlock()
	for _, out := range u.route(i, ev) {
		h(out)
	}
}

// route records member i's event and returns what the handler sees.
func (u *Union) route(i int, ev Event) []Event {
	switch ev.Type {
	case EventDomainAdded, EventDomainUpdated, EventAgentChannel, EventDomainRemoved:
	default:
		return []Event{ev}
	}
	id := ev.Domain.UUID
	u.mu.Lock()
	defer u.mu.Unlock()
	if ev.Type == EventDomainRemoved {
		delete(u.known[i], id)
	} else {
		u.known[i][id] = ev.Domain
	}
	owner, owned := u.owner[id]
	var out []Event
	switch {
	case !owned:
		if ev.Type != EventDomainRemoved {
			u.owner[id] = i
		}
		out = append(out, ev)
	case owner == i && ev.Type == EventDomainRemoved:
		delete(u.owner, id)
		// a hidden snapshot of a later member takes over: the domain still exists
		for j := range u.known {
			if d, ok := u.known[j][id]; ok && j != i {
				u.owner[id] = j
				out = append(out, Event{Type: EventDomainUpdated, Domain: d, Lifecycle: LifecycleResynced, Reason: "conflicting domain source gone"})
				break
			}
		}
		if len(out) == 0 {
			out = append(out, ev)
		}
	case owner == i:
		out = append(out, ev)
	case i < owner && ev.Type != EventDomainRemoved:
		u.owner[id] = i // the earlier member wins
		ev.Type = EventDomainUpdated
		out = append(out, ev)
	default: // hidden: the owner's snapshot is delivered
	}
	u.checkConflictLocked(id)
	return out
}

// checkConflictLocked logs the start and the end of a UUID conflict.
func (u *Union) checkConflictLocked(id string) {
	var where []Domain
	for j := range u.known {
		if d, ok := u.known[j][id]; ok {
			where = append(where, d)
		}
	}
	switch {
	case len(where) > 1 && !u.conflicts[id]:
		u.conflicts[id] = true
		w := where[0]
		var hidden []string
		for _, d := range where[1:] {
			hidden = append(hidden, describe(d))
		}
		u.log.Error(errors.New("configuration conflict: the same domain UUID comes from two domain sources"),
			"Domain UUID conflict; only the first source's domain is served", "domainUUID", id,
			"served", describe(w), "ignored", hidden)
	case len(where) <= 1 && u.conflicts[id]:
		delete(u.conflicts, id)
		u.log.Info("Domain UUID conflict resolved", "domainUUID", id)
	}
}

func describe(d Domain) string {
	if d.QGASocket != "" {
		return "QGA socket domain " + d.Name + " (" + d.QGASocket + ")"
	}
	return "libvirt domain " + d.Name
}

// Conflicts returns the UUIDs currently known to more than one member.
func (u *Union) Conflicts() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.conflicts))
	for id := range u.conflicts {
		out = append(out, id)
	}
	return out
}

// Connected implements Watcher: every member is connected.
func (u *Union) Connected() bool {
	for _, m := range u.members {
		if !m.Connected() {
			return false
		}
	}
	return true
}

// Synced implements Watcher: every member is synced.
func (u *Union) Synced() bool {
	for _, m := range u.members {
		if !m.Synced() {
			return false
		}
	}
	return true
}

// Domains implements Watcher: every domain once, from the earliest member that knows it.
func (u *Union) Domains() []Domain {
	seen := map[string]bool{}
	var out []Domain
	for _, m := range u.members {
		for _, d := range m.Domains() {
			if !seen[d.UUID] {
				seen[d.UUID] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// Domain implements Watcher: the earliest member's snapshot.
func (u *Union) Domain(uuid string) (Domain, bool) {
	for _, m := range u.members {
		if d, ok := m.Domain(uuid); ok {
			return d, true
		}
	}
	return Domain{}, false
}
