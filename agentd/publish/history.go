package publish

import (
	"slices"

	"guestagent.io/operator/api/v1alpha1"
)

// RecordExecuted adds a command executed on a domain to the history published in its
// status.executedCommands (it implements the executor's History). The history is kept until the
// domain leaves this node and merged into every later Upsert; the domain's object is written again
// at once when the domain is published.
func (p *Publisher) RecordExecuted(uuid string, ec v1alpha1.ExecutedCommand) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		p.log.Error(err, "Not recording an executed command of an invalid domain UUID", "domainUUID", uuid)
		return
	}
	p.mu.Lock()
	h := append(p.executed[u], ec)
	if n := len(h); n > v1alpha1.MaxExecutedCommands {
		h = h[n-v1alpha1.MaxExecutedCommands:]
	}
	p.executed[u] = h
	e := p.entries[u]
	republish := e != nil && e.desired != nil && !e.removed
	if republish {
		d := *e.desired // never modified in place: sync may be reading it
		d.ExecutedCommands = append(slices.Clone(d.ExecutedCommands), ec)
		e.desired = &d
		e.gen++
	}
	p.mu.Unlock()
	if republish {
		p.enqueue(u)
	}
}

// withHistoryLocked returns d's history with the commands this publisher recorded for the domain.
func (p *Publisher) withHistoryLocked(uuid string, d []v1alpha1.ExecutedCommand) []v1alpha1.ExecutedCommand {
	return append(d, p.executed[uuid]...)
}
