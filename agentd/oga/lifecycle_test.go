package oga_test

import (
	. "github.com/onsi/gomega"

	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/oga/ogafake"
)

// notified records the agent state as the Listener's OnChange saw it, which is what the service
// layer publishes: a state nobody is notified about never reaches the GuestAgentStatus.
type notified struct {
	mu     sync.Mutex
	l      *oga.Listener
	states []oga.State
}

func (n *notified) onChange(id string) {
	a := n.l.Agent(id)
	if a == nil {
		return
	}
	st := a.State()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.states = append(n.states, st)
}

func (n *notified) last() (oga.State, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.states) == 0 {
		return oga.State{}, 0
	}
	return n.states[len(n.states)-1], len(n.states)
}

func startNotifiedListener(t *testing.T, tm oga.Timing) *notified {
	n := &notified{}
	n.l = oga.NewListener(oga.ListenerOptions{Log: logr.Discard(), Timing: tm, OnChange: n.onChange})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// Responsiveness is "a valid message within ResponsiveTimeout" with or without a connection:
// when the channel goes away and stays away, the expiry is still announced.
func TestResponsivenessExpiresWhileDisconnected(t *testing.T) {
	tm := timing()
	tm.ResponsiveTimeout = 300 * time.Millisecond
	tm.CooldownDelay = 10 * time.Second // the expiry must not depend on a reconnect attempt
	n := startNotifiedListener(t, tm)
	path := filepath.Join(t.TempDir(), "vm.sock")
	g := ogafake.New(ogafake.Config{HeartbeatInterval: 20 * time.Millisecond})
	stop := fakeGuest(t, g, path)
	a := n.l.Add("u", path, 0)
	NewWithT(t).Eventually(func() bool {
		st, _ := n.last()
		return st.Channel == guest.ChannelConnected && st.Responsive
	}).WithTimeout(20*time.Second).Should(BeTrue(), "responsive announced")

	stop() // the socket disappears and every reconnect attempt fails
	NewWithT(t).Eventually(func() bool {
		st, _ := n.last()
		return st.Channel == guest.ChannelDisconnected
	}).WithTimeout(20*time.Second).Should(BeTrue(), "disconnect announced")
	NewWithT(t).Eventually(func() bool {
		st, _ := n.last()
		return st.Channel == guest.ChannelDisconnected && !st.Responsive
	}).WithTimeout(20*time.Second).Should(BeTrue(), "expiry announced while disconnected")
	st := a.State()
	if st.Responsive || st.LastMessage.IsZero() {
		t.Fatalf("state after expiry: %+v", st)
	}
	if age := time.Since(st.LastMessage); age < tm.ResponsiveTimeout {
		t.Fatalf("expired %v after the last message, before the %v timeout", age, tm.ResponsiveTimeout)
	}
}

// A channel that accepts the connection but carries no message has no agent behind it; the agent
// is reported after its first valid message, and again only after it speaks on a new connection.
func TestSpokenOnlyAfterAValidMessage(t *testing.T) {
	n := startNotifiedListener(t, timing())
	path := filepath.Join(t.TempDir(), "vm.sock")
	ln, err := netListen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := n.l.Add("u", path, 0)
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool { return a.State().Channel == guest.ChannelConnected }).WithTimeout(20*time.Second).Should(BeTrue(), "connected")
	if st := a.State(); st.Spoken {
		t.Fatalf("silent channel reported as spoken: %+v", st)
	}
	if _, err := conn.Write([]byte("not json\n")); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool { return a.State().Stats.DroppedLines == 1 }).WithTimeout(20*time.Second).Should(BeTrue(), "bad line counted")
	if a.State().Spoken {
		t.Fatal("an invalid line made the agent present")
	}
	if _, err := conn.Write([]byte(`{"__name__":"heartbeat","apiVersion":3}` + "\n")); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		st, _ := n.last()
		return st.Channel == guest.ChannelConnected && st.Spoken
	}).WithTimeout(20*time.Second).Should(BeTrue(), "spoken announced")

	// A new connection starts silent again.
	conn.Close()
	conn2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	NewWithT(t).Eventually(func() bool { st := a.State(); return st.Channel == guest.ChannelConnected && st.Stats.Connects == 2 }).WithTimeout(20*time.Second).Should(BeTrue(), "reconnected")
	if st := a.State(); st.Spoken {
		t.Fatalf("new silent connection reported as spoken: %+v", st)
	}
}
