package service

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// views collects what the service hands to OnChange and OnRemove.
type views struct {
	mu      sync.Mutex
	last    map[string]View
	removed []string
}

func (v *views) onChange(view View) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.last == nil {
		v.last = map[string]View{}
	}
	v.last[view.Domain.UUID] = view
}

func (v *views) onRemove(d virt.Domain, migrated bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r := "removed " + d.UUID
	if migrated {
		r = "migrated " + d.UUID
	}
	v.removed = append(v.removed, r)
}

func (v *views) get(uuid string) (View, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	view, ok := v.last[uuid]
	return view, ok
}

func (v *views) removals() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.removed)
}

// runService runs a service over the given fakes until the test ends.
func runService(t *testing.T, opts Options) (*GuestAgentService, *views) {
	t.Helper()
	out := &views{}
	opts.Log = testr.New(t)
	opts.OnChange, opts.OnRemove = out.onChange, out.onRemove
	s := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, out
}

func runningDomain() virt.Domain {
	return virt.Domain{UUID: testUUID, Name: "vm1", State: virt.StateRunning, HasQGAChannel: true,
		QGAChannel: guest.ChannelConnected, OGASocketPath: "/run/oga/" + testUUID}
}

// The service subscribes to both agents itself: a change on either side reaches OnChange with
// the merged view, without any wiring by the caller.
func TestServiceFollowsProviderChanges(t *testing.T) {
	g := NewWithT(t)
	q, o := servicefake.NewQGA(), servicefake.NewOGA()
	w := virt.NewFake(runningDomain())
	_, out := runService(t, Options{Watcher: w, QGA: q, OGA: o})

	g.Eventually(func() bool { return o.Served(testUUID) }).Should(BeTrue())
	q.Set(testUUID, &guest.Info{Hostname: &guest.Hostname{Name: "from-qga"}},
		guest.QGAState{Channel: guest.ChannelConnected, Responsive: true, Version: "9.2.0"})
	g.Eventually(func() string {
		v, _ := out.get(testUUID)
		if v.Info == nil || v.Info.Hostname == nil {
			return ""
		}
		return v.Info.Hostname.Name
	}).Should(Equal("from-qga"))

	o.Set(testUUID, guest.OGAState{Channel: guest.ChannelConnected, Responsive: true, APIVersion: 3},
		&guest.Info{Session: &guest.Session{State: guest.SessionLocked}})
	g.Eventually(func() bool {
		v, _ := out.get(testUUID)
		return v.OGA.Present && v.OGA.Responsive && v.OGA.APIVersion == 3 &&
			v.Info != nil && v.Info.Session != nil && v.Info.Session.State == guest.SessionLocked &&
			v.Sources[guest.GroupSession] == gav1.SourceOvirt
	}).Should(BeTrue())

	w.Remove(testUUID, virt.LifecycleStopped)
	g.Eventually(out.removals).Should(Equal([]string{"removed " + testUUID}))
	g.Eventually(func() bool { return o.Served(testUUID) }).Should(BeFalse())
}

// A domain that migrates away is handed over (OnRemove with migrated), and its agents stop.
func TestServiceHandsOverMigratedDomain(t *testing.T) {
	g := NewWithT(t)
	q, o := servicefake.NewQGA(), servicefake.NewOGA()
	w := virt.NewFake(runningDomain())
	s, out := runService(t, Options{Watcher: w, QGA: q, OGA: o})
	g.Eventually(func() bool { return o.Served(testUUID) }).Should(BeTrue())

	d := runningDomain()
	d.State = virt.StatePaused
	w.Set(d, virt.LifecycleMigratedOut)
	g.Eventually(out.removals).Should(Equal([]string{"migrated " + testUUID}))
	g.Expect(o.Served(testUUID)).To(BeFalse())
	g.Expect(s.Domains()).To(BeEmpty())
}

// The oVirt agent of a new domain starts at the persisted API version; a failed read starts it at
// 0 (and is logged), and a domain already served is not read again.
func TestServicePersistedOGAVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		vs   *fakeVersions
		want int
	}{
		{"persisted", &fakeVersions{versions: map[string]int{testUUID: 3}}, 3},
		{"none persisted", &fakeVersions{}, 0},
		{"read fails", &fakeVersions{versions: map[string]int{testUUID: 3}, err: errors.New("apiserver down")}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := servicefake.NewOGA()
			s := New(Options{Log: testr.New(t), Watcher: virt.NewFake(), QGA: servicefake.NewQGA(), OGA: o, OGAVersions: c.vs})
			s.handle(virt.Event{Type: virt.EventDomainAdded, Domain: runningDomain(), Lifecycle: virt.LifecycleDiscovered})
			s.handle(virt.Event{Type: virt.EventDomainUpdated, Domain: runningDomain(), Lifecycle: virt.LifecycleNone})
			got, served := o.ServedWith(testUUID)
			if !served || got != c.want {
				t.Errorf("served %v with API version %d, want %d", served, got, c.want)
			}
			if len(c.vs.asked) != 1 {
				t.Errorf("asked %d times for the persisted version, want once", len(c.vs.asked))
			}
		})
	}
}

// Lifecycle hooks follow libvirt's lifecycle events when enabled, and only for domains with an
// oVirt channel.
func TestServiceLifecycleHooks(t *testing.T) {
	cases := []struct {
		name    string
		enabled bool
		lc      virt.Lifecycle
		noOGA   bool
		want    []string
	}{
		{"migrated in", true, virt.LifecycleMigratedIn, false, []string{"after_migration " + testUUID + " failed=false"}},
		{"migration failed here", true, virt.LifecycleMigrationFailed, false, []string{"after_migration " + testUUID + " failed=true"}},
		{"migration paused here", true, virt.LifecycleMigrationPaused, false, nil},
		{"migration started here", true, virt.LifecycleMigrationStarted, false, nil},
		{"disabled, migration failed", false, virt.LifecycleMigrationFailed, false, nil},
		{"restored", true, virt.LifecycleRestored, false, []string{"after_hibernation " + testUUID + " failed=false"}},
		{"started", true, virt.LifecycleStarted, false, nil},
		{"disabled", false, virt.LifecycleMigratedIn, false, nil},
		{"no oVirt channel", true, virt.LifecycleMigratedIn, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			ev := &fakeEvents{}
			d := runningDomain()
			if c.noOGA {
				d.OGASocketPath = ""
			}
			w := virt.NewFake()
			_, out := runService(t, Options{Watcher: w, QGA: servicefake.NewQGA(), OGA: servicefake.NewOGA(), Events: ev,
				LifecycleHooks: c.enabled, HookTimeout: time.Second})
			w.Set(d, c.lc)
			g.Eventually(func() bool { _, ok := out.get(testUUID); return ok }).Should(BeTrue()) // the event was handled
			if c.want == nil {
				g.Consistently(ev.Sent, 200*time.Millisecond).Should(BeEmpty())
				return
			}
			g.Eventually(ev.Sent).Should(Equal(c.want))
		})
	}
}

// A migration that fails on its source (paused for the final phase, then running here again)
// leaves the domain where it was: still published here (no hand-over, no removal), its agents
// still served, and the guest told after_migration with failure, once. The destination side of
// the same attempt (started, then stopped as failed) never sends a hook and removes nothing but
// its own view.
func TestServiceMigrationFailedOnSource(t *testing.T) {
	g := NewWithT(t)
	ev := &fakeEvents{}
	q, o := servicefake.NewQGA(), servicefake.NewOGA()
	w := virt.NewFake(runningDomain())
	s, out := runService(t, Options{Watcher: w, QGA: q, OGA: o, Events: ev, LifecycleHooks: true, HookTimeout: time.Second})
	g.Eventually(func() bool { return o.Served(testUUID) }).Should(BeTrue())

	paused := runningDomain()
	paused.State, paused.StateReason = virt.StatePaused, "Migration"
	w.Set(paused, virt.LifecycleMigrationPaused)
	g.Eventually(func() virt.State { v, _ := out.get(testUUID); return v.Domain.State }).Should(Equal(virt.StatePaused))
	g.Expect(ev.Sent()).To(BeEmpty(), "nothing is sent while the migration runs")

	back := runningDomain()
	back.StateReason = "Unpaused"
	w.Set(back, virt.LifecycleMigrationFailed)
	g.Eventually(ev.Sent).Should(Equal([]string{"after_migration " + testUUID + " failed=true"}))
	g.Eventually(func() virt.State { v, _ := out.get(testUUID); return v.Domain.State }).Should(Equal(virt.StateRunning))
	g.Consistently(func() []string { return out.removals() }, 300*time.Millisecond).Should(BeEmpty(), "the status is neither released nor removed")
	g.Expect(s.Domains()).To(Equal([]string{testUUID}))
	g.Expect(o.Served(testUUID)).To(BeTrue(), "the oVirt agent is still served on the source")
	g.Expect(ev.Sent()).To(HaveLen(1))
}

// On the destination, a migration that lands sends after_migration without failure, once; one
// that fails there (the incoming domain stopped) sends nothing.
func TestServiceMigrationOnDestination(t *testing.T) {
	for _, c := range []struct {
		name  string
		final virt.Lifecycle
		want  []string
	}{
		{"landed", virt.LifecycleMigratedIn, []string{"after_migration " + testUUID + " failed=false"}},
		{"failed", virt.LifecycleStopped, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			ev := &fakeEvents{}
			w := virt.NewFake()
			_, out := runService(t, Options{Watcher: w, QGA: servicefake.NewQGA(), OGA: servicefake.NewOGA(), Events: ev,
				LifecycleHooks: true, HookTimeout: time.Second})
			incoming := runningDomain()
			incoming.State, incoming.StateReason = virt.StatePaused, "Migration"
			w.Set(incoming, virt.LifecycleMigrationStarted)
			g.Eventually(func() bool { _, ok := out.get(testUUID); return ok }).Should(BeTrue())
			if c.final == virt.LifecycleStopped {
				w.Remove(testUUID, virt.LifecycleStopped)
				g.Eventually(out.removals).Should(Equal([]string{"removed " + testUUID}))
			} else {
				w.Set(runningDomain(), c.final)
			}
			if c.want == nil {
				g.Consistently(ev.Sent, 300*time.Millisecond).Should(BeEmpty())
				return
			}
			g.Eventually(ev.Sent).Should(Equal(c.want))
			g.Consistently(ev.Sent, 300*time.Millisecond).Should(Equal(c.want))
		})
	}
}

// Without an oVirt side (OGA disabled) the service serves QGA alone and reports no OGA.
func TestServiceWithoutOGA(t *testing.T) {
	g := NewWithT(t)
	q := servicefake.NewQGA()
	_, out := runService(t, Options{Watcher: virt.NewFake(runningDomain()), QGA: q})
	q.Set(testUUID, nil, guest.QGAState{Channel: guest.ChannelConnected, Responsive: true})
	g.Eventually(func() bool {
		v, ok := out.get(testUUID)
		return ok && v.QGA.Responsive && !v.OGA.Present
	}).Should(BeTrue())
}

// While the guest's filesystems are frozen the QEMU guest agent answers but cannot refresh its
// data: every group taken from it keeps its last known content and is stale (the publisher gives
// such groups the reason FilesystemsFrozen); after the thaw none is stale. The real poller's side
// (State.FSFreeze through a long freeze) is qga.TestRealFreezeLongerThanThreePollPeriods.
func TestServiceFrozenQGAGroupsAreStale(t *testing.T) {
	g := NewWithT(t)
	q := servicefake.NewQGA()
	_, out := runService(t, Options{Watcher: virt.NewFake(runningDomain()), QGA: q})
	info := &guest.Info{
		Hostname:    &guest.Hostname{Name: "vm1"},
		OS:          &guest.OS{Type: guest.OSTypeLinux, KernelRelease: "6.1.0"},
		Timezone:    &guest.Timezone{Zone: "UTC"},
		Users:       &guest.Users{List: []guest.User{}},
		Network:     &guest.Network{Interfaces: []guest.Interface{{Name: "eth0", IPv4: []string{"10.0.2.15/24"}}}},
		Filesystems: &guest.Filesystems{List: []guest.Filesystem{{Mountpoint: "/mnt/data", Type: "ext4"}}},
		Disks:       &guest.Disks{Mappings: []guest.DiskMapping{{Serial: "s1", Device: "/dev/vda"}}},
		VCPUs:       &guest.VCPUs{Online: 1},
	}
	groups := []guest.Group{guest.GroupHostname, guest.GroupOS, guest.GroupTimezone, guest.GroupUsers, guest.GroupNetwork,
		guest.GroupFilesystems, guest.GroupDisks, guest.GroupVCPUs, guest.GroupApplications}
	// viewWith waits for the view with the given freeze state and every group from QGA
	viewWith := func(fsFreeze string) View {
		var v View
		g.Eventually(func(g Gomega) {
			v, _ = out.get(testUUID)
			g.Expect(v.QGA.FSFreeze).To(Equal(fsFreeze))
			for _, gr := range groups {
				g.Expect(v.Sources).To(HaveKeyWithValue(gr, gav1.SourceQemu), "source of %s", gr)
				g.Expect(v.Info.Has(gr)).To(BeTrue(), "%s kept", gr)
			}
		}).Should(Succeed())
		return v
	}
	st := guest.QGAState{Channel: guest.ChannelConnected, Responsive: true, Version: "7.2.22"}
	q.Set(testUUID, info, st)
	g.Expect(viewWith("").Stale).To(BeEmpty())

	st.FSFreeze = guest.FreezeFrozen
	q.Set(testUUID, info, st)
	v := viewWith(guest.FreezeFrozen)
	for _, gr := range groups {
		g.Expect(v.Stale).To(HaveKeyWithValue(gr, true), "%s while frozen", gr)
	}
	g.Expect(v.Info.Hostname.Name).To(Equal("vm1"))
	g.Expect(v.QGA.Responsive).To(BeTrue())

	st.FSFreeze = guest.FreezeThawed
	q.Set(testUUID, info, st)
	g.Expect(viewWith(guest.FreezeThawed).Stale).To(BeEmpty())
}

// After a transition in which the guest clock stood still, the service sets it through QGA once,
// retrying while the agent's channel is down; other transitions, a domain without a QGA channel
// and a disabled TimeSync send nothing, and a guest that refuses is not asked again.
func TestServiceTimeSync(t *testing.T) {
	qgaDown := func(d *virt.Domain) { d.QGAChannel = guest.ChannelDisconnected }
	cases := []struct {
		name    string
		enabled bool
		lc      virt.Lifecycle
		domain  func(*virt.Domain)
		failing error
		want    int // settime calls
	}{
		{"resumed", true, virt.LifecycleResumed, nil, nil, 1},
		{"migrated in", true, virt.LifecycleMigratedIn, nil, nil, 1},
		{"migration failed, runs here again", true, virt.LifecycleMigrationFailed, nil, nil, 1},
		{"restored", true, virt.LifecycleRestored, nil, nil, 1},
		{"reverted to a snapshot", true, virt.LifecycleFromSnapshot, nil, nil, 1},
		{"woke up", true, virt.LifecycleWokeUp, nil, nil, 1},
		{"booted", true, virt.LifecycleStarted, nil, nil, 0},
		{"paused", true, virt.LifecycleSuspended, nil, nil, 0},
		{"disabled", false, virt.LifecycleResumed, nil, nil, 0},
		{"no QGA channel", true, virt.LifecycleResumed, func(d *virt.Domain) { d.HasQGAChannel = false; qgaDown(d) }, nil, 0},
		{"unsupported", true, virt.LifecycleResumed, nil, classedErr{class: "Unsupported"}, 1},
		{"refused by the guest", true, virt.LifecycleResumed, nil, classedErr{class: "GuestError"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			q := servicefake.NewQGA()
			q.FailWith = c.failing
			d := runningDomain()
			if c.domain != nil {
				c.domain(&d)
			}
			w := virt.NewFake()
			_, out := runService(t, Options{Watcher: w, QGA: q, TimeSync: c.enabled, TimeSyncTimeout: 30 * time.Second})
			w.Set(d, c.lc)
			g.Eventually(func() bool { _, ok := out.get(testUUID); return ok }).Should(BeTrue()) // the event was handled
			settime := func() int {
				return len(slices.DeleteFunc(q.Calls(), func(s string) bool { return s != "settime "+testUUID }))
			}
			if c.want > 0 {
				g.Eventually(settime).Should(Equal(c.want))
			}
			g.Consistently(settime, 300*time.Millisecond).Should(Equal(c.want))
		})
	}
	t.Run("retried until the channel connects", func(t *testing.T) {
		g := NewWithT(t)
		q := servicefake.NewQGA()
		d := runningDomain()
		qgaDown(&d)
		w := virt.NewFake()
		_, out := runService(t, Options{Watcher: w, QGA: q, TimeSync: true, TimeSyncTimeout: 30 * time.Second})
		w.Set(d, virt.LifecycleMigratedIn)
		g.Eventually(func() bool { _, ok := out.get(testUUID); return ok }).Should(BeTrue())
		g.Consistently(q.Calls, 700*time.Millisecond).Should(BeEmpty(), "nothing reaches an agent whose channel is down")
		d.QGAChannel = guest.ChannelConnected
		w.Set(d, virt.LifecycleNone) // the agent channel connected
		g.Eventually(q.Calls, 10*time.Second).Should(Equal([]string{"settime " + testUUID}))
	})
}

// A QGA-only domain gets its memory from libvirt's statistics; when they disappear, an oVirt
// agent's figures take over, and the data groups name the source each time.
func TestServiceMemoryFromLibvirt(t *testing.T) {
	g := NewWithT(t)
	q, o, mem := servicefake.NewQGA(), servicefake.NewOGA(), newFakeMemory()
	w := virt.NewFake(runningDomain())
	_, out := runService(t, Options{Watcher: w, QGA: q, OGA: o, Memory: mem})
	q.Set(testUUID, &guest.Info{Hostname: &guest.Hostname{Name: "h"}},
		guest.QGAState{Channel: guest.ChannelConnected, Responsive: true})
	memory := func() (*guest.Memory, gav1.DataSource, bool) {
		v, _ := out.get(testUUID)
		if v.Info == nil {
			return nil, "", false
		}
		return v.Info.Memory, v.Sources[guest.GroupMemory], v.Stale[guest.GroupMemory]
	}

	full := &guest.Memory{TotalBytes: 2 << 30, UsableBytes: 1 << 30, BalloonBytes: 2 << 30, HostRSSBytes: 300 << 20}
	mem.Set(testUUID, full, true)
	g.Eventually(func() gav1.DataSource {
		m, src, _ := memory()
		return map[bool]gav1.DataSource{true: src}[m != nil && *m == *full]
	}).
		Should(Equal(gav1.SourceLibvirt))

	// The oVirt agent reports memory too: the balloon statistics still win.
	g.Eventually(func() bool { return o.Served(testUUID) }).Should(BeTrue())
	ogaMem := &guest.Memory{TotalBytes: 2 << 30, FreeBytes: 1 << 29}
	o.Set(testUUID, guest.OGAState{Channel: guest.ChannelConnected, Responsive: true}, &guest.Info{Memory: ogaMem})
	g.Eventually(func() bool { v, _ := out.get(testUUID); return v.OGA.Responsive }).Should(BeTrue())
	m, src, _ := memory()
	g.Expect(src).To(Equal(gav1.SourceLibvirt))
	g.Expect(*m).To(Equal(*full))

	// Statistics unreadable: the responsive oVirt agent stands in.
	mem.Set(testUUID, full, false)
	g.Eventually(func() bool { m, src, stale := memory(); return src == gav1.SourceOvirt && !stale && *m == *ogaMem }).Should(BeTrue())

	w.Remove(testUUID, virt.LifecycleStopped)
	g.Eventually(func() bool { return mem.sawRemoval(testUUID) }).Should(BeTrue())
}
