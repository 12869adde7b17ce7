package virt

// Real-libvirtd tests (GA_REAL_LIBVIRT=1; see docs/qga.md). The QGA-side real tests, including
// the libvirtd restart, are in agentd/qga/real_libvirt_test.go.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/internal/hostcmd"
)

func TestRealLifecycleEvents(t *testing.T) {
	if os.Getenv("GA_REAL_LIBVIRT") != "1" {
		t.Skip("GA_REAL_LIBVIRT=1 not set")
	}
	log := funcr.New(func(p, a string) { t.Log(p, a) }, funcr.Options{Verbosity: 2})
	m := NewManager(Config{Log: log})
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = m.Run(ctx, func(e Event) {
			t.Logf("event %v %s %v chan=%v state=%v (%s)", e.Type, e.Domain.Name, e.Lifecycle, e.Domain.QGAChannel, e.Domain.State, e.Reason)
			rec.handle(e)
		})
	}()
	defer func() { cancel(); <-done }()
	go func() { <-ctx.Done(); close(done) }()
	NewWithT(t).Eventually(m.Connected).WithTimeout(30*time.Second).Should(BeTrue(), "connected")

	const name = "ga-virt-life"
	script := filepath.Join("..", "..", "hack", "guest.sh")
	_ = exec.Command(script, "down", name).Run()
	defer func() { _ = exec.Command(script, "down", name).Run() }()
	out, err := hostcmd.Output(exec.Command(script, "up", name))
	if err != nil {
		t.Fatalf("guest up: %v", err)
	}
	t.Logf("%s", out)
	var uuid string
	NewWithT(t).Eventually(func() bool {
		_, s := rec.find(func(e Event) bool { return e.Domain.Name == name && e.Lifecycle == LifecycleStarted })
		e, c := rec.find(func(e Event) bool {
			return e.Domain.Name == name && e.Type == EventAgentChannel && e.Domain.QGAChannel == guest.ChannelConnected
		})
		uuid = e.Domain.UUID
		return s && c
	}).WithTimeout(60*time.Second).Should(BeTrue(), "started + agent connected")
	// The state and libvirt's reason for it: paused by a user, running again after unpausing.
	for _, step := range []struct{ cmd, reason string }{{"suspend", "User"}, {"resume", "Unpaused"}} {
		if _, err := hostcmd.Virsh(DefaultURI, step.cmd, name); err != nil {
			t.Fatalf("%s: %v", step.cmd, err)
		}
		NewWithT(t).Eventually(func() string {
			d, _ := m.Domain(uuid)
			return d.StateReason
		}).WithTimeout(30*time.Second).Should(Equal(step.reason), step.cmd+" state reason")
	}
	rec.mu.Lock()
	mark := len(rec.evs)
	rec.mu.Unlock()
	if _, err := hostcmd.Virsh(DefaultURI, "shutdown", name, "--mode", "agent"); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// libvirt 9.0 emits AGENT_LIFECYCLE "disconnected" on a guest shutdown only when its
	// serial-port handler wins a race against the process teardown (virsh saw it, this watcher
	// mostly does not), so the Stopped event itself must take the channel out of Connected.
	dis := false
	NewWithT(t).Eventually(func() bool {
		stop := false
		rec.mu.Lock()
		for _, e := range rec.evs[mark:] {
			dis = dis || (e.Domain.UUID == uuid && e.Type == EventAgentChannel && e.Domain.QGAChannel == guest.ChannelDisconnected)
			stop = stop || (e.Domain.UUID == uuid && e.Lifecycle == LifecycleStopped && e.Domain.QGAChannel != guest.ChannelConnected)
		}
		rec.mu.Unlock()
		return stop
	}).WithTimeout(60*time.Second).Should(BeTrue(), "stopped")
	t.Logf("agent-lifecycle disconnected event seen on shutdown: %v", dis)
	if d, _ := m.Domain(uuid); d.State != StateShutOff || d.StateReason != "Shutdown" || d.QGAChannel != guest.ChannelUnknown {
		t.Errorf("after shutdown: %+v", d)
	}
}
