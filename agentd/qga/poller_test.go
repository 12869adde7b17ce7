package qga

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

type harness struct {
	p       *QemuGuestAgentPoller
	api     *fakeAPI
	clk     *fakeClock
	doms    *domainSet
	changes sync.Map // uuid → *atomic.Int32
}

func newHarness(t *testing.T, mut func(*Config)) *harness {
	t.Helper()
	h := &harness{api: newFakeAPI(), clk: newFakeClock(), doms: &domainSet{}}
	cfg := Config{API: h.api, Domains: h.doms.list, Clock: h.clk, Log: testr.New(t), Tick: time.Hour, Workers: 2,
		OnChange: func(u string) {
			v, _ := h.changes.LoadOrStore(u, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
		}}
	if mut != nil {
		mut(&cfg)
	}
	p, err := NewQemuGuestAgentPoller(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	NewWithT(t).Eventually(func() bool { return p.ticks.Load() > 0 }).WithTimeout(5*time.Second).Should(BeTrue(), "Run's first tick")
	return h
}

func (h *harness) changeCount(u string) int32 {
	v, ok := h.changes.Load(u)
	if !ok {
		return 0
	}
	return v.(*atomic.Int32).Load()
}

// step advances the clock, ticks and waits until all runs finished.
func (h *harness) step(t *testing.T, d time.Duration) {
	t.Helper()
	h.clk.Advance(d)
	h.p.Tick()
	NewWithT(t).Eventually(h.p.idle).WithTimeout(5*time.Second).Should(BeTrue(), "poller idle")
}

func TestPollerPeriods(t *testing.T) {
	h := newHarness(t, nil)
	h.api.add("a", defaultGuest("a"))
	h.doms.set(running("a"))
	h.step(t, 0)
	for _, c := range []string{CmdInfo, CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices, CmdVCPUs, CmdFSInfo, CmdDisks} {
		if n := h.api.count("a", c); n != 1 {
			t.Errorf("first run: %s called %d times, want 1", c, n)
		}
	}
	info, ok := h.p.Info("a")
	if !ok {
		t.Fatal("no info")
	}
	for _, g := range []guest.Group{guest.GroupHostname, guest.GroupOS, guest.GroupTimezone, guest.GroupUsers, guest.GroupNetwork,
		guest.GroupFilesystems, guest.GroupDisks, guest.GroupVCPUs, guest.GroupPCIDevices} {
		if !info.Has(g) {
			t.Errorf("group %s missing after first run", g)
		}
	}
	if info.Disks.Mappings[0] != (guest.DiskMapping{Serial: "s1", Device: "/dev/vda"}) {
		t.Errorf("disk mapping = %+v", info.Disks.Mappings)
	}
	st, _ := h.p.State("a")
	if st.Version != "7.2.22" || !st.Responsive || st.Channel != guest.ChannelConnected || len(st.UnsupportedCommands) != 0 {
		t.Errorf("state = %+v", st)
	}

	h.step(t, 10*time.Second) // t=10: users only
	if h.api.count("a", CmdUsers) != 2 || h.api.count("a", CmdOSInfo) != 1 || h.api.count("a", CmdInterfaces) != 1 {
		t.Errorf("t=10s: users=%d os=%d net=%d", h.api.count("a", CmdUsers), h.api.count("a", CmdOSInfo), h.api.count("a", CmdInterfaces))
	}
	h.step(t, 50*time.Second) // t=60: users, cpus
	if h.api.count("a", CmdVCPUs) != 2 || h.api.count("a", CmdHostName) != 1 {
		t.Errorf("t=60s: vcpus=%d hostname=%d", h.api.count("a", CmdVCPUs), h.api.count("a", CmdHostName))
	}
	h.step(t, 60*time.Second) // t=120: sys group
	for _, c := range []string{CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices} {
		if n := h.api.count("a", c); n != 2 {
			t.Errorf("t=120s: %s called %d times, want 2", c, n)
		}
	}
	if h.api.count("a", CmdInfo) != 1 || h.api.count("a", CmdFSInfo) != 1 {
		t.Errorf("t=120s: caps/fs polled too early")
	}
	h.step(t, 180*time.Second) // t=300: caps, fs, disks
	for _, c := range []string{CmdInfo, CmdFSInfo, CmdDisks} {
		if n := h.api.count("a", c); n != 2 {
			t.Errorf("t=300s: %s called %d times, want 2", c, n)
		}
	}
	if h.api.maxPar > 1 {
		t.Errorf("%d concurrent calls to one domain", h.api.maxPar)
	}
}

func TestPollerBootWindow(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("b")
	// only lo and a link-local address: the early-network check keeps asking
	g.ifs = []NetInterface{{Name: "lo", IPAddresses: []IPAddress{{Type: "ipv4", Address: "127.0.0.1", Prefix: i(8)}}},
		{Name: "eth0", IPAddresses: []IPAddress{{Type: "ipv6", Address: "fe80::1", Prefix: i(64)}}}}
	g.errs[CmdInfo] = &Error{Class: ErrNotConnected, Command: CmdInfo, Err: errors.New("agent not connected yet")}
	h.api.add("b", g)
	h.doms.set(running("b"))
	h.step(t, 0)
	if h.api.count("b", CmdInfo) != 1 || h.api.total("b") != 1 {
		t.Fatalf("caps failure must stop the run: %v", h.api.calls["b"])
	}
	// NotConnected is not throttled: in the boot window caps are retried on the next tick
	h.api.mu.Lock()
	delete(g.errs, CmdInfo)
	h.api.mu.Unlock()
	h.step(t, 5*time.Second)
	if h.api.count("b", CmdInfo) != 2 || h.api.count("b", CmdInterfaces) != 1 {
		t.Fatalf("boot window caps retry: %v", h.api.calls["b"])
	}
	h.step(t, 5*time.Second)
	h.step(t, 5*time.Second)
	if n := h.api.count("b", CmdInterfaces); n != 3 {
		t.Errorf("early network: interfaces called %d times in 3 runs, want 3", n)
	}
	// a routable address appears: back to the normal period
	h.api.mu.Lock()
	g.ifs[1].IPAddresses = append(g.ifs[1].IPAddresses, IPAddress{Type: "ipv4", Address: "10.0.2.15", Prefix: i(24)})
	h.api.mu.Unlock()
	h.step(t, 5*time.Second)
	h.step(t, 5*time.Second)
	if n := h.api.count("b", CmdInterfaces); n != 4 {
		t.Errorf("after routable address: interfaces called %d times, want 4", n)
	}
	// outside the boot window a missing address does not trigger extra calls
	h2 := newHarness(t, func(c *Config) { c.BootWindow = time.Second })
	g2 := defaultGuest("c")
	g2.ifs = g.ifs[:1]
	h2.api.add("c", g2)
	h2.doms.set(running("c"))
	h2.step(t, 0)
	h2.step(t, 5*time.Second)
	h2.step(t, 5*time.Second)
	if n := h2.api.count("c", CmdInterfaces); n != 1 {
		t.Errorf("outside boot window: interfaces called %d times, want 1", n)
	}
}

func TestPollerGatingAndUnsupported(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("g")
	g.caps = allCommands(CmdDevices) // listed but disabled
	g.caps = slices.DeleteFunc(g.caps, func(c CommandInfo) bool { return c.Name == CmdUsers || c.Name == CmdDisks })
	g.errs[CmdFSInfo] = &Error{Class: ErrUnsupported, Command: CmdFSInfo, Err: errors.New("not supported by the driver")}
	h.api.add("g", g)
	h.doms.set(running("g"))
	h.step(t, 0)
	for _, c := range []string{CmdUsers, CmdDevices, CmdDisks} {
		if n := h.api.count("g", c); n != 0 {
			t.Errorf("%s sent %d times although not enabled", c, n)
		}
	}
	if h.api.count("g", CmdFSInfo) != 1 || h.api.count("g", CmdVCPUs) != 1 || h.api.count("g", CmdHostName) != 1 {
		t.Errorf("an unsupported command must not stop the others: %v", h.api.calls["g"])
	}
	st, _ := h.p.State("g")
	want := []string{CmdDevices, CmdDisks, CmdFSInfo, CmdUsers}
	if !slices.Equal(st.UnsupportedCommands, want) {
		t.Errorf("unsupported = %v, want %v", st.UnsupportedCommands, want)
	}
	if !st.Responsive || st.LastError == nil || st.LastError.Class != ErrUnsupported {
		t.Errorf("state = %+v", st)
	}
	h.step(t, 300*time.Second)
	if n := h.api.count("g", CmdFSInfo); n != 1 {
		t.Errorf("unsupported fsinfo retried: %d", n)
	}
	if h.api.count("g", CmdInfo) != 2 {
		t.Errorf("caps not re-checked at 300 s")
	}
	// a request for a command the agent does not offer is refused without sending it
	h.api.mu.Lock()
	g.caps = slices.DeleteFunc(g.caps, func(c CommandInfo) bool { return c.Name == CmdShutdown })
	h.api.mu.Unlock()
	h.step(t, 300*time.Second)
	if err := h.p.Shutdown(context.Background(), "g", ShutdownPowerdown); ClassOf(err) != ErrUnsupported {
		t.Errorf("shutdown without guest-shutdown: %v", err)
	}
	if h.api.count("g", CmdShutdown) != 0 {
		t.Error("guest-shutdown sent although not offered")
	}
}

func TestPollerThrottleAfterFailure(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("t")
	h.api.add("t", g)
	h.doms.set(running("t"))
	h.step(t, 0)
	before, _ := h.p.Info("t")
	h.api.mu.Lock()
	g.errs[CmdUsers] = &Error{Class: ErrTimeout, Command: CmdUsers, Err: errors.New("agent not responding")}
	h.api.mu.Unlock()
	h.step(t, 10*time.Second) // users fails → throttled
	st, _ := h.p.State("t")
	if st.Responsive || st.LastError == nil || st.LastError.Class != ErrTimeout {
		t.Fatalf("state after timeout = %+v", st)
	}
	n := h.api.total("t")
	for k := 0; k < 9; k++ {
		h.step(t, 5*time.Second) // up to t=55 s: inside the 60 s throttle
	}
	if h.api.total("t") != n {
		t.Errorf("throttled domain was polled: %d calls, want %d", h.api.total("t"), n)
	}
	after, _ := h.p.Info("t")
	if !after.Has(guest.GroupUsers) || !after.Has(guest.GroupOS) || after.OS.KernelRelease != before.OS.KernelRelease {
		t.Error("failure blanked good data")
	}
	h.api.mu.Lock()
	delete(g.errs, CmdUsers)
	h.api.mu.Unlock()
	h.step(t, 20*time.Second) // t=75 s: throttle over
	if h.api.total("t") == n {
		t.Error("domain not polled after the throttle")
	}
	if st, _ := h.p.State("t"); !st.Responsive {
		t.Error("not responsive after recovery")
	}
}

func TestPollerHungGuestDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Workers = 2; c.TaskTimeout = 50 * time.Millisecond })
	hung := defaultGuest("hung")
	hung.hang = make(chan struct{})
	h.api.add("hung", hung)
	h.doms.set(running("hung"))
	others := []string{"o1", "o2", "o3", "o4", "o5"}
	for _, u := range others {
		h.api.add(u, defaultGuest(u))
		h.doms.set(running(u))
	}
	h.clk.Advance(0)
	h.p.Tick()
	for _, u := range others {
		NewWithT(t).Eventually(func() bool { i, _ := h.p.Info(u); return i != nil && i.Has(guest.GroupOS) }).WithTimeout(5*time.Second).Should(BeTrue(), "data of "+u)
	}
	h.clk.Advance(10 * time.Second)
	h.p.Tick()
	for _, u := range others {
		NewWithT(t).Eventually(func() bool { return h.api.count(u, CmdUsers) == 2 }).WithTimeout(5*time.Second).Should(BeTrue(), "second users poll of "+u)
	}
	if n := h.api.count("hung", CmdInfo); n != 1 {
		t.Errorf("hung guest got %d guest-info calls; one in flight at most", n)
	}
	close(hung.hang)
	NewWithT(t).Eventually(func() bool { i, _ := h.p.Info("hung"); return i != nil && i.Has(guest.GroupOS) }).WithTimeout(5*time.Second).Should(BeTrue(), "hung guest finishes")
	if h.api.maxPar > 1 {
		t.Errorf("%d concurrent calls to one domain", h.api.maxPar)
	}
}

func TestPollerSkipsPausedAndDisconnected(t *testing.T) {
	h := newHarness(t, nil)
	for _, u := range []string{"p", "d", "u"} {
		h.api.add(u, defaultGuest(u))
	}
	p := running("p")
	p.State = virt.StatePaused
	d := running("d")
	d.QGAChannel = guest.ChannelDisconnected
	un := running("u")
	un.QGAChannel = guest.ChannelUnknown
	h.doms.set(p)
	h.doms.set(d)
	h.doms.set(un)
	h.step(t, 0)
	h.step(t, 10*time.Second)
	for _, u := range []string{"p", "d", "u"} {
		if n := h.api.total(u); n != 0 {
			t.Errorf("%s polled %d times", u, n)
		}
	}
	// the channel connects (event): polled at once, without waiting for a tick
	d.QGAChannel = guest.ChannelConnected
	h.doms.set(d)
	h.p.HandleEvent(virt.Event{Type: virt.EventAgentChannel, Domain: d})
	NewWithT(t).Eventually(func() bool { return h.api.count("d", CmdInfo) == 1 }).WithTimeout(5*time.Second).Should(BeTrue(), "poll after connect")
	// resume the paused one
	p.State = virt.StateRunning
	h.doms.set(p)
	h.step(t, 5*time.Second)
	if h.api.count("p", CmdInfo) != 1 {
		t.Error("resumed domain not polled")
	}
	// disconnect: no more polling, state says so, data kept
	d.QGAChannel = guest.ChannelDisconnected
	h.doms.set(d)
	n := h.api.total("d")
	h.step(t, 300*time.Second)
	if h.api.total("d") != n {
		t.Error("disconnected domain polled")
	}
	st, _ := h.p.State("d")
	if st.Channel != guest.ChannelDisconnected || st.Responsive {
		t.Errorf("state after disconnect = %+v", st)
	}
	if i, _ := h.p.Info("d"); !i.Has(guest.GroupOS) {
		t.Error("disconnect dropped data")
	}
}

func TestPollerCleanupAndChangeNotification(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("c")
	h.api.add("c", g)
	h.doms.set(running("c"))
	h.step(t, 0)
	first := h.changeCount("c")
	if first == 0 {
		t.Fatal("no change notification for the first data")
	}
	h.step(t, 10*time.Second) // identical users reply
	if got := h.changeCount("c"); got != first {
		t.Errorf("unchanged poll notified (%d → %d)", first, got)
	}
	h.api.mu.Lock()
	g.users = []UserInfo{{User: "root"}, {User: "frodo", Domain: "hobbits", LoginTime: 1700000000.5}}
	h.api.mu.Unlock()
	h.step(t, 10*time.Second)
	if got := h.changeCount("c"); got != first+1 {
		t.Errorf("changed users: notifications %d → %d", first, got)
	}
	i, _ := h.p.Info("c")
	if len(i.Users.List) != 2 || i.Users.List[1].Domain != "hobbits" {
		t.Errorf("users = %+v", i.Users.List)
	}
	// deep copies: mutating a returned Info does not affect the poller
	i.Users.List[0].Name = "mallory"
	if j, _ := h.p.Info("c"); j.Users.List[0].Name != "root" {
		t.Error("Info is not a deep copy")
	}
	// users back to zero: empty list, old users cleared
	h.api.mu.Lock()
	g.users = nil
	g.os = nil // malformed/absent OS reply must not blank the OS group
	h.api.mu.Unlock()
	h.step(t, 120*time.Second)
	i, _ = h.p.Info("c")
	if i.Users == nil || len(i.Users.List) != 0 {
		t.Errorf("users after count 0 = %+v", i.Users)
	}
	if i.OS == nil || i.OS.KernelRelease != "6.1.0-56-amd64" {
		t.Errorf("absent OS reply blanked OS: %+v", i.OS)
	}
	// the domain vanishes: cleaned up at the next tick
	h.doms.del("c")
	h.step(t, 5*time.Second)
	if _, ok := h.p.Info("c"); ok {
		t.Error("vanished domain still has info")
	}
	h.p.mu.Lock()
	n := len(h.p.doms)
	h.p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d domains left after cleanup", n)
	}
}

func TestPollerRequests(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("r")
	h.api.add("r", g)
	h.doms.set(running("r"))
	h.step(t, 0)
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"shutdown": func() error { return h.p.Shutdown(ctx, "r", ShutdownPowerdown) },
		"reboot":   func() error { return h.p.Reboot(ctx, "r") },
		"freeze":   func() error { _, err := h.p.FSFreeze(ctx, "r", nil); return err },
		"thaw":     func() error { return h.p.FSThaw(ctx, "r", nil) },
		"settime":  func() error { return h.p.SetTime(ctx, "r") },
		"ping":     func() error { return h.p.Ping(ctx, "r") },
	} {
		if err := f(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := h.p.Shutdown(ctx, "r", "sideways"); ClassOf(err) != ErrUnsupported {
		t.Errorf("bad mode: %v", err)
	}
	if err := h.p.Ping(ctx, "nope"); ClassOf(err) != ErrDomainNotRunning {
		t.Errorf("unknown domain: %v", err)
	}
	h.api.mu.Lock()
	g.errs[CmdPing] = &Error{Class: ErrTimeout, Command: CmdPing, Err: errors.New("agent not responding")}
	h.api.mu.Unlock()
	if err := h.p.Ping(ctx, "r"); ClassOf(err) != ErrTimeout {
		t.Errorf("ping on hung agent: %v", err)
	}
	if st, _ := h.p.State("r"); st.Responsive {
		t.Error("failed ping left Responsive = true")
	}
	// a request waits for an in-flight poll and gives up at its deadline
	hang := make(chan struct{})
	h.api.mu.Lock()
	g.hang = hang
	delete(g.errs, CmdPing)
	h.api.mu.Unlock()
	h.clk.Advance(10 * time.Second)
	h.p.Tick()
	NewWithT(t).Eventually(func() bool { return h.api.count("r", CmdUsers) == 2 }).WithTimeout(5*time.Second).Should(BeTrue(), "poll in flight")
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := h.p.Ping(tctx, "r"); ClassOf(err) != ErrTimeout {
		t.Errorf("ping while busy: %v", err)
	}
	close(hang)
}

// TestLateRunKeepsThePeriod: a run that starts after the tick that queued it (busy workers) is
// stamped with the tick's time, so the period does not stretch to the next tick.
func TestLateRunKeepsThePeriod(t *testing.T) {
	clk := newFakeClock()
	api := newFakeAPI()
	api.add("a", defaultGuest("a"))
	doms := &domainSet{}
	doms.set(running("a"))
	p, err := NewQemuGuestAgentPoller(Config{API: api, Domains: doms.list, Clock: clk, Log: testr.New(t), Tick: 5 * time.Second, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	runQueued := func(late time.Duration) {
		t.Helper()
		p.Tick()
		select {
		case u := <-p.queue: // no workers: this test is the worker
			clk.Advance(late)
			p.runDomain(ctx, u)
		default:
			t.Fatal("nothing queued")
		}
	}
	runQueued(0) // t=0: first run, everything
	clk.Advance(10 * time.Second)
	runQueued(3 * time.Second) // queued at t=10 (users due), runs at t=13
	if n := api.count("a", CmdUsers); n != 2 {
		t.Fatalf("users polled %d times by t=13s, want 2", n)
	}
	clk.Advance(7 * time.Second) // t=20: 10 s after the tick that queued the last run
	runQueued(0)
	if n := api.count("a", CmdUsers); n != 3 {
		t.Fatalf("users polled %d times by t=20s, want 3 (the 10 s period stretched)", n)
	}
}

// Suspend sends only what guest-info offers: guest-suspend-ram when enabled, never a disabled
// guest-suspend-disk or an unlisted guest-suspend-hybrid.
func TestPollerSuspendGating(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("s")
	g.caps = append(g.caps, CommandInfo{Name: CmdSuspendRAM, Enabled: true}, CommandInfo{Name: CmdSuspendDisk, Enabled: false})
	h.api.add("s", g)
	h.doms.set(running("s"))
	h.step(t, 0)
	ctx := context.Background()
	if err := h.p.Suspend(ctx, "s", CmdSuspendRAM); err != nil {
		t.Errorf("suspend-ram: %v", err)
	}
	for _, cmd := range []string{CmdSuspendDisk, CmdSuspendHybrid, "guest-suspend-sideways"} {
		if err := h.p.Suspend(ctx, "s", cmd); ClassOf(err) != ErrUnsupported {
			t.Errorf("%s: %v, want Unsupported", cmd, err)
		}
		if n := h.api.count("s", cmd); n != 0 {
			t.Errorf("%s sent %d times although not offered", cmd, n)
		}
	}
	if n := h.api.count("s", CmdSuspendRAM); n != 1 {
		t.Errorf("guest-suspend-ram sent %d times, want 1", n)
	}
}
