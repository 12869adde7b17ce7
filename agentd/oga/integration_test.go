package oga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/oga/ogafake"
)

// waitTimeout bounds every wait on the listener: generous, it only matters when a test fails.
const waitTimeout = 20 * time.Second

func timing() oga.Timing {
	return oga.Timing{
		ConnectRetryDelay: 20 * time.Millisecond,
		QuickRetries:      5,
		CooldownDelay:     500 * time.Millisecond,
		IdleTimeout:       300 * time.Millisecond,
		ResponsiveTimeout: 5 * time.Second,
		WriteTimeout:      2 * time.Second,
		DialTimeout:       time.Second,
		FirstConnectWait:  3 * time.Second,
		CompletionTimeout: 3 * time.Second,
	}
}

type changes struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *changes) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[id]++
}

func (c *changes) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

func startListener(t *testing.T, tm oga.Timing) (*oga.Listener, *changes) {
	ch := &changes{n: map[string]int{}}
	l := oga.NewListener(oga.ListenerOptions{Log: logr.Discard(), Timing: tm, OnChange: ch.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, ch
}

// fakeGuest runs an ogafake guest listening at path until the returned stop is called.
func fakeGuest(t *testing.T, g *ogafake.Guest, path string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		// Listen synchronously before reporting ready, so the host can dial at once.
		ln, err := netListen(path)
		close(ready)
		if err != nil {
			done <- err
			return
		}
		done <- g.ServeListener(ctx, ln)
	}()
	<-ready
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("fake guest: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestConnectNegotiateAndHooks(t *testing.T) {
	l, ch := startListener(t, timing())
	path := filepath.Join(t.TempDir(), "vm1.ovirt-guest-agent.0")
	g := ogafake.New(ogafake.Config{HeartbeatInterval: 20 * time.Millisecond, HookEvents: []string{oga.HookBeforeMigration}})
	fakeGuest(t, g, path)
	a := l.Add("uuid-1", path, 0)

	// Refresh on connect, then heartbeat(0) → heartbeat(3) → api-version 3 → burst with os-info.
	NewWithT(t).Eventually(func() bool { return a.APIVersion() == 3 && g.APIVersion() == 3 }).WithTimeout(waitTimeout).Should(BeTrue(), "API version 3")
	NewWithT(t).Eventually(func() bool {
		i := a.Info()
		return i.OS != nil && i.OS.Type == guest.OSTypeLinux && i.Timezone != nil && i.Containers != nil &&
			i.Memory != nil && i.Filesystems != nil && i.Users != nil && i.Network != nil
	}).WithTimeout(waitTimeout).Should(BeTrue(), "os-info and timezone")
	if refreshes := g.ReceivedNamed("refresh"); len(refreshes) != 1 || refreshes[0].Raw != `{"apiVersion": 3, "__name__": "refresh"}` {
		t.Fatalf("refresh: %+v", refreshes)
	}
	if v := g.ReceivedNamed("api-version"); len(v) != 1 {
		t.Fatalf("api-version sent %d times", len(v))
	}
	info := a.Info()
	if info.Hostname.Name != "guest.example.com" || len(info.Users.List) != 0 || info.Filesystems.List[0].TotalBytes != 270553174016 {
		t.Fatalf("info: %+v %+v %+v", info.Hostname, info.Users, info.Filesystems)
	}
	st := a.State()
	if st.Channel != guest.ChannelConnected || !st.Responsive || st.APIVersion != 3 || st.LastMessage.IsZero() {
		t.Fatalf("state %+v", st)
	}
	if ch.get("uuid-1") == 0 {
		t.Fatal("no change notification")
	}

	// Hook with configured dir: completion. Exactly one lifecycle-event reaches the guest.
	ctx := context.Background()
	if err := a.LifecycleEvent(ctx, oga.HookBeforeMigration, false, true, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(g.ReceivedNamed("lifecycle-event")); n != 1 {
		t.Fatalf("lifecycle-event received %d times", n)
	}
	// Hook without dir: the guest never answers.
	err := a.LifecycleEvent(ctx, oga.HookBeforeHibernation, false, true, 200*time.Millisecond)
	if !errors.Is(err, oga.ErrNoCompletion) {
		t.Fatalf("want ErrNoCompletion, got %v", err)
	}
	// set-number-of-cpus is answered with number-of-cpus carrying the new count.
	if n, err := a.SetNumberOfCPUs(ctx, 7, waitTimeout); err != nil || n != 7 {
		t.Fatalf("SetNumberOfCPUs(7) = %d, %v", n, err)
	}
	if i := a.Info(); i.VCPUs == nil || i.VCPUs.Online != 7 {
		t.Fatalf("vcpus after the report: %+v", i.VCPUs)
	}

	// Data changes reach the model and trigger notifications.
	before := ch.get("uuid-1")
	g.SetUser("alice")
	NewWithT(t).Eventually(func() bool {
		i := a.Info()
		return i.Users != nil && len(i.Users.List) == 1 && i.Users.List[0].Name == "alice"
	}).WithTimeout(waitTimeout).Should(BeTrue(), "user alice")
	if ch.get("uuid-1") <= before {
		t.Fatal("change not notified")
	}
	// Info is a deep copy.
	i1 := a.Info()
	i1.Network.Interfaces[0].IPv4[0] = "mutated"
	if a.Info().Network.Interfaces[0].IPv4[0] == "mutated" {
		t.Fatal("Info shares memory")
	}
}

func TestGuestAgentEvents(t *testing.T) {
	l, _ := startListener(t, timing())
	path := filepath.Join(t.TempDir(), "vm.sock")
	g := ogafake.New(ogafake.Config{HeartbeatInterval: 20 * time.Millisecond,
		HookEvents: []string{oga.HookBeforeMigration, oga.HookAfterMigration, oga.HookAfterHibernation}})
	fakeGuest(t, g, path)
	ev := oga.NewGuestAgentEvents(l, logr.Discard(), 300*time.Millisecond)
	ctx := context.Background()

	// Unknown domain and API < 3: nothing sent, no error.
	if err := ev.BeforeMigration(ctx, "nope"); err != nil {
		t.Fatal(err)
	}
	a := l.Add("u", path, 0)
	NewWithT(t).Eventually(func() bool { return a.State().Channel == guest.ChannelConnected }).WithTimeout(waitTimeout).Should(BeTrue(), "connected")
	if a.APIVersion() < 3 {
		if err := ev.AfterMigration(ctx, "u", false); err != nil {
			t.Fatal(err)
		}
	}
	NewWithT(t).Eventually(func() bool { return a.APIVersion() == 3 && g.APIVersion() == 3 }).WithTimeout(waitTimeout).Should(BeTrue(), "API 3")
	NewWithT(t).Eventually(func() bool { return a.State().Responsive }).WithTimeout(waitTimeout).Should(BeTrue(), "responsive")
	if err := ev.BeforeMigration(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	// before_hibernation has no hook dir in this guest: waits and reports no completion.
	if err := ev.BeforeHibernation(ctx, "u"); !errors.Is(err, oga.ErrNoCompletion) {
		t.Fatalf("got %v", err)
	}
	if err := ev.AfterMigration(ctx, "u", true); err != nil {
		t.Fatal(err)
	}
	if err := ev.AfterHibernation(ctx, "u", false); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool { return len(g.ReceivedNamed("lifecycle-event")) == 4 }).WithTimeout(waitTimeout).Should(BeTrue(), "4 lifecycle events")
	evs := g.ReceivedNamed("lifecycle-event")
	want := []struct {
		typ            string
		reply, failure bool
	}{{"before_migration", true, false}, {"before_hibernation", true, false}, {"after_migration", false, true}, {"after_hibernation", false, false}}
	for i, w := range want {
		_, hasReply := evs[i].Args["reply_id"]
		_, hasFailure := evs[i].Args["failure"]
		if evs[i].Args["type"] != w.typ || hasReply != w.reply || hasFailure != w.failure {
			t.Fatalf("event %d: %s", i, evs[i].Raw)
		}
	}
}

func TestRestoredAPIVersionSendsAtOnce(t *testing.T) {
	l, _ := startListener(t, timing())
	path := filepath.Join(t.TempDir(), "vm.sock")
	g := ogafake.New(ogafake.Config{HeartbeatInterval: time.Hour}) // no heartbeat: nothing negotiates
	fakeGuest(t, g, path)
	a := l.Add("u", path, 7) // clamped to 3, like a value restored from metadata
	if a.APIVersion() != 3 {
		t.Fatalf("api %d", a.APIVersion())
	}
	// Sent right after Add: waits for the first connect, then goes out.
	if err := a.LifecycleEvent(context.Background(), oga.HookAfterMigration, false, false, 0); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool { return len(g.ReceivedNamed("lifecycle-event")) == 1 }).WithTimeout(waitTimeout).Should(BeTrue(), "hook at guest")
}

func TestReconnectAndCooldown(t *testing.T) {
	tm := timing()
	l, _ := startListener(t, tm)
	path := filepath.Join(t.TempDir(), "vm.sock")
	g := ogafake.New(ogafake.Config{HeartbeatInterval: 20 * time.Millisecond})
	stop := fakeGuest(t, g, path)
	a := l.Add("u", path, 0)
	NewWithT(t).Eventually(func() bool { return a.State().Channel == guest.ChannelConnected }).WithTimeout(waitTimeout).Should(BeTrue(), "connected")
	NewWithT(t).Eventually(func() bool { return a.State().Stats.Messages > 0 }).WithTimeout(waitTimeout).Should(BeTrue(), "data")

	stop() // the socket disappears (QEMU gone)
	NewWithT(t).Eventually(func() bool { return a.State().Channel == guest.ChannelDisconnected }).WithTimeout(waitTimeout).Should(BeTrue(), "disconnected")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket still there: %v", err)
	}
	// The quick retries run out: the agent is now in cooldown.
	NewWithT(t).Eventually(func() uint64 { return a.State().Stats.ConnectFailures }).WithTimeout(waitTimeout).
		Should(BeNumerically(">=", tm.QuickRetries), "quick retries used up")
	g2 := ogafake.New(ogafake.Config{HeartbeatInterval: 20 * time.Millisecond})
	fakeGuest(t, g2, path)
	NewWithT(t).Eventually(func() bool {
		return a.State().Channel == guest.ChannelConnected && len(g2.ReceivedNamed("refresh")) == 1
	}).WithTimeout(waitTimeout).Should(BeTrue(), "reconnected")
	if c := a.State().Stats.Connects; c != 2 {
		t.Fatalf("connects %d", c)
	}
	NewWithT(t).Eventually(func() bool { return a.APIVersion() == 3 }).WithTimeout(waitTimeout).Should(BeTrue(), "renegotiated")
}

func TestIdleClearsMemoryOnly(t *testing.T) {
	l, ch := startListener(t, timing())
	path := filepath.Join(t.TempDir(), "vm.sock")
	g := ogafake.New(ogafake.Config{HeartbeatInterval: 20 * time.Millisecond})
	fakeGuest(t, g, path)
	a := l.Add("u", path, 0)
	NewWithT(t).Eventually(func() bool { i := a.Info(); return i.Memory != nil && i.Hostname != nil }).WithTimeout(waitTimeout).Should(BeTrue(), "memory")
	// Silence the guest: a new fake with an hour-long heartbeat cannot be swapped in place, so
	// use the idle period of a guest that only answered the refresh.
	l.Remove("u")
	g2 := ogafake.New(ogafake.Config{HeartbeatInterval: time.Hour})
	path2 := filepath.Join(t.TempDir(), "vm2.sock")
	fakeGuest(t, g2, path2)
	a2 := l.Add("u2", path2, 0)
	NewWithT(t).Eventually(func() bool { return a2.Info().Hostname != nil }).WithTimeout(waitTimeout).Should(BeTrue(), "hostname")
	g2.SendRaw([]byte(`{"__name__":"heartbeat","free-ram":"100","apiVersion":0}` + "\n"))
	NewWithT(t).Eventually(func() bool { return a2.Info().Memory != nil }).WithTimeout(waitTimeout).Should(BeTrue(), "memory")
	n := ch.get("u2")
	NewWithT(t).Eventually(func() bool { return a2.Info().Memory == nil }).WithTimeout(waitTimeout).Should(BeTrue(), "memory cleared after idle")
	i := a2.Info()
	if i.Hostname == nil || i.Network == nil || a2.State().Channel != guest.ChannelConnected {
		t.Fatalf("idle cleared more than memory: %+v", i)
	}
	if ch.get("u2") <= n {
		t.Fatal("idle clear not notified")
	}
}

func TestHostileInputKeepsStream(t *testing.T) {
	l, _ := startListener(t, timing())
	path := filepath.Join(t.TempDir(), "vm.sock")
	g := ogafake.New(ogafake.Config{HeartbeatInterval: time.Hour})
	fakeGuest(t, g, path)
	a := l.Add("u", path, 0)
	NewWithT(t).Eventually(func() bool { return g.Connected() && a.State().Channel == guest.ChannelConnected }).WithTimeout(waitTimeout).Should(BeTrue(), "connected")
	big := make([]byte, oga.MaxMessageSize+10)
	for i := range big {
		big[i] = 'x'
	}
	g.SendRaw(append(big, '\n'))
	g.SendRaw([]byte("{\"no name\":1}\n[1,2]\nnot json\n" + `{"__name__":"host-name","name":"ok\u0000"}` + "\r\n"))
	NewWithT(t).Eventually(func() bool {
		i := a.Info()
		return i.Hostname != nil && i.Hostname.Name == "ok\uFFFD"
	}).WithTimeout(waitTimeout).Should(BeTrue(), "host-name after garbage")
	st := a.State().Stats
	if st.OversizedLines != 1 || st.DroppedLines != 3 || a.State().Channel != guest.ChannelConnected {
		t.Fatalf("stats %+v", st)
	}
}

func TestManyDomainsAndRemoveWithoutLeaks(t *testing.T) {
	l, _ := startListener(t, timing())
	dir := t.TempDir()
	fdsBefore := countFDs(t)
	const n = 50
	var stops []func()
	var agents []*oga.OvirtGuestAgent
	guests := make([]*ogafake.Guest, n)
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("vm%d.sock", i))
		guests[i] = ogafake.New(ogafake.Config{HeartbeatInterval: 50 * time.Millisecond})
		stops = append(stops, fakeGuest(t, guests[i], path))
		agents = append(agents, l.Add(fmt.Sprintf("uuid-%d", i), path, 0))
	}
	var wg sync.WaitGroup
	var ready atomic.Int32
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			NewWithT(t).Eventually(func() bool { return a.APIVersion() == 3 && a.Info().OS != nil }).WithTimeout(waitTimeout).Should(BeTrue(), "negotiated")
			ready.Add(1)
		}()
	}
	wg.Wait()
	if ready.Load() != n || len(l.Domains()) != n {
		t.Fatalf("ready %d", ready.Load())
	}
	// Idempotent Add.
	if l.Add("uuid-0", filepath.Join(dir, "vm0.sock"), 0) != agents[0] {
		t.Fatal("Add not idempotent")
	}
	for i := range n {
		l.Remove(fmt.Sprintf("uuid-%d", i))
	}
	for _, s := range stops {
		s()
	}
	if l.Agent("uuid-0") != nil || len(l.Domains()) != 0 {
		t.Fatal("agents left")
	}
	NewWithT(t).Eventually(func() bool { return countFDs(t) <= fdsBefore }).WithTimeout(waitTimeout).Should(BeTrue(), "fds back")
}

func TestPathChangeReplacesConnection(t *testing.T) {
	l, _ := startListener(t, timing())
	dir := t.TempDir()
	g1 := ogafake.New(ogafake.Config{HeartbeatInterval: time.Hour})
	g2 := ogafake.New(ogafake.Config{HeartbeatInterval: time.Hour})
	fakeGuest(t, g1, filepath.Join(dir, "a.sock"))
	fakeGuest(t, g2, filepath.Join(dir, "b.sock"))
	a := l.Add("u", filepath.Join(dir, "a.sock"), 3)
	NewWithT(t).Eventually(func() bool { return len(g1.ReceivedNamed("refresh")) == 1 }).WithTimeout(waitTimeout).Should(BeTrue(), "g1 refresh")
	if b := l.Add("u", filepath.Join(dir, "b.sock"), 0); b != a {
		t.Fatal("path change returned a new agent")
	}
	NewWithT(t).Eventually(func() bool { return len(g2.ReceivedNamed("refresh")) == 1 }).WithTimeout(waitTimeout).Should(BeTrue(), "g2 refresh")
	NewWithT(t).Eventually(func() bool { return !g1.Connected() }).WithTimeout(waitTimeout).Should(BeTrue(), "g1 disconnected")
	if a.APIVersion() != 3 || a.State().SocketPath != filepath.Join(dir, "b.sock") {
		t.Fatalf("state %+v", a.State())
	}
}

func countFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(es)
}

// TestFirstFailedDialIsAChange: a channel whose socket cannot be dialled goes from Unknown to
// Disconnected, and that is announced (else the status keeps "Unknown" until something else
// changes); later failed retries are not changes.
func TestFirstFailedDialIsAChange(t *testing.T) {
	tm := timing()
	l, ch := startListener(t, tm)
	a := l.Add("nosock", filepath.Join(t.TempDir(), "absent.sock"), 0)
	NewWithT(t).Eventually(func() bool { return a.State().Channel == guest.ChannelDisconnected }).WithTimeout(waitTimeout).Should(BeTrue(), "disconnected")
	NewWithT(t).Eventually(func() bool { return ch.get("nosock") >= 1 }).WithTimeout(waitTimeout).Should(BeTrue(), "announced")
	n := ch.get("nosock")
	NewWithT(t).Consistently(func() int { return ch.get("nosock") }).
		WithTimeout(time.Duration(tm.QuickRetries+1)*tm.ConnectRetryDelay).WithPolling(tm.ConnectRetryDelay/4).
		Should(Equal(n), "changes announced by the failed retries")
}
