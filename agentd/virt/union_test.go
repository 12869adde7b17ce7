package virt

import (
	"context"
	"sync"
	"testing"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
)

type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }
func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

func summary(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Type.String() + " " + ev.Domain.Name
		if ev.Domain.QGASocket != "" {
			s += " socket"
		}
		out = append(out, s)
	}
	return out
}

func TestUnionConflictFirstMemberWins(t *testing.T) {
	g := NewWithT(t)
	const dup = "00000000-0000-0000-0000-00000000000d"
	lv := NewFake(Domain{UUID: dup, Name: "lv-dup", State: StateRunning}, Domain{UUID: "l1", Name: "lv-only", State: StateRunning})
	sk := NewFake(Domain{UUID: "s1", Name: "sock-only", QGASocket: "/s1.sock"})
	u := NewUnion(testr.New(t), lv, sk)
	log := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- u.Run(ctx, log.add) }()
	defer func() { cancel(); g.Expect(<-done).To(Succeed()) }()

	g.Eventually(u.Synced).Should(BeTrue())
	g.Eventually(func() []string { return summary(log.all()) }).Should(ConsistOf("DomainAdded lv-dup", "DomainAdded lv-only", "DomainAdded sock-only socket"))
	g.Expect(u.Connected()).To(BeTrue())

	// the socket source reports the libvirt domain's UUID: hidden, conflict reported
	sk.Set(Domain{UUID: dup, Name: "sock-dup", QGASocket: "/dup.sock", State: StateRunning}, LifecycleDiscovered)
	g.Eventually(u.Conflicts).Should(ConsistOf(dup))
	sk.SetChannel(dup, guest.ChannelConnected)
	lv.SetChannel("l1", guest.ChannelConnected) // a later event proves the hidden ones were processed
	g.Eventually(func() int { return len(log.all()) }).Should(Equal(4))
	g.Expect(summary(log.all())[3]).To(Equal("AgentChannel lv-only"))
	d, _ := u.Domain(dup)
	g.Expect(d.Name).To(Equal("lv-dup"))
	g.Expect(u.Domains()).To(HaveLen(3))

	// libvirt drops it: the socket domain takes over as an update, not a removal
	lv.Remove(dup, LifecycleUndefined)
	g.Eventually(func() []string { return summary(log.all()) }).Should(HaveLen(5))
	g.Expect(summary(log.all())[4]).To(Equal("DomainUpdated sock-dup socket"))
	g.Expect(u.Conflicts()).To(BeEmpty())
	d, _ = u.Domain(dup)
	g.Expect(d.QGASocket).To(Equal("/dup.sock"))

	// libvirt reports it again: libvirt wins at once
	lv.Set(Domain{UUID: dup, Name: "lv-dup", State: StateRunning}, LifecycleStarted)
	g.Eventually(func() []string { return summary(log.all()) }).Should(HaveLen(6))
	g.Expect(summary(log.all())[5]).To(Equal("DomainUpdated lv-dup"))
	g.Expect(u.Conflicts()).To(ConsistOf(dup))

	// the socket side goes: nothing visible changes; then libvirt goes: removed
	sk.Remove(dup, LifecycleNone)
	g.Eventually(u.Conflicts).Should(BeEmpty())
	lv.Remove(dup, LifecycleUndefined)
	g.Eventually(func() []string { return summary(log.all()) }).Should(HaveLen(7))
	g.Expect(summary(log.all())[6]).To(Equal("DomainRemoved lv-dup"))

	// connection events pass through; Connected needs every member
	lv.SetConnected(false)
	g.Eventually(func() []string { return summary(log.all()) }).Should(HaveLen(8))
	g.Expect(log.all()[7].Type).To(Equal(EventConnectionLost))
	g.Expect(u.Connected()).To(BeFalse())
	g.Expect(u.Synced()).To(BeFalse())
}
