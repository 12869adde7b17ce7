package virt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"libvirt.org/go/libvirt"

	"guestagent.io/operator/agentd/guest"
)

// recorder collects events delivered to a Handler.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) handle(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) find(f func(Event) bool) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if f(e) {
			return e, true
		}
	}
	return Event{}, false
}

func (r *recorder) count(f func(Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.evs {
		if f(e) {
			n++
		}
	}
	return n
}

// testDomainUUID is the UUID of generated domain i.
func testDomainUUID(i int) string { return fmt.Sprintf("6a1e0000-0000-4000-8000-%012d", i) }

// writeNodeXML writes a test:/// driver node file with n domains whose channels and metadata
// cycle through the cases the parser must handle, and returns its absolute path.
func writeNodeXML(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("<node>\n<cpu><mhz>2000</mhz><model>i686</model><active>2</active><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>\n<memory>8388608</memory>\n")
	for i := 0; i < n; i++ {
		var dev, meta string
		switch i % 6 {
		case 0: // QGA connected, OGA
			dev = fmt.Sprintf(`<channel type='unix'><source mode='bind' path='/run/t/%d.qga'/><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
<channel type='unix'><source mode='bind' path='/run/t/%d.oga'/><target type='virtio' name='ovirt-guest-agent.0'/></channel>`, i, i)
		case 1: // QGA disconnected, legacy OGA
			dev = fmt.Sprintf(`<channel type='unix'><source mode='bind' path='/run/t/%d.qga'/><target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/></channel>
<channel type='unix'><source mode='bind' path='/run/t/%d.legacy'/><target type='virtio' name='com.redhat.rhevm.vdsm'/></channel>`, i, i)
		case 2: // QGA without state, namespace override
			dev = fmt.Sprintf(`<channel type='unix'><source mode='bind' path='/run/t/%d.qga'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>`, i)
			meta = `<metadata><ga:placement xmlns:ga="http://guestagent.io/xmlns/libvirt/v1" namespace="tenant-a"/></metadata>`
		case 3: // no channel at all, opted out
			meta = `<metadata><ga:placement xmlns:ga="http://guestagent.io/xmlns/libvirt/v1" publish="false"/></metadata>`
		case 4: // both OGA names: the modern one wins
			dev = fmt.Sprintf(`<channel type='unix'><source mode='bind' path='/run/t/%d.legacy'/><target type='virtio' name='com.redhat.rhevm.vdsm'/></channel>
<channel type='unix'><source mode='bind' path='/run/t/%d.oga'/><target type='virtio' name='ovirt-guest-agent.0'/></channel>
<channel type='unix'><source mode='bind' path='/run/t/%d.qga'/><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>`, i, i, i)
		case 5: // interface only
		}
		fmt.Fprintf(&b, `<domain type='test'><name>dom%04d</name><uuid>%s</uuid>%s<memory>131072</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os><devices><interface type='network'><source network='default'/><mac address='52:54:00:%02x:%02x:%02x'/></interface>%s</devices></domain>
`, i, testDomainUUID(i), meta, (i>>16)&0xff, (i>>8)&0xff, i&0xff, dev)
	}
	b.WriteString(`<network><name>default</name><bridge name='virbr0'/><forward/><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>` + "\n</node>\n")
	p := filepath.Join(t.TempDir(), "node.xml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func startManager(t *testing.T, uri string) (*Manager, *recorder) {
	t.Helper()
	m := NewManager(Config{URI: uri, Log: testr.New(t), ResyncInterval: -1})
	return m, runManager(t, m)
}

func testLog(t *testing.T) logr.Logger { return testr.New(t) }

// runManager runs m until the test ends and records what it delivers.
func runManager(t *testing.T, m *Manager) *recorder {
	t.Helper()
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, rec.handle) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return rec
}

func TestManagerTestDriverDiscovery(t *testing.T) {
	const n = 300
	uri := "test://" + writeNodeXML(t, n)
	m, rec := startManager(t, uri)
	NewWithT(t).Eventually(func() bool {
		return rec.count(func(e Event) bool { return e.Type == EventDomainAdded }) == n
	}).WithTimeout(20*time.Second).Should(BeTrue(), "discovery of all domains")
	if !m.Connected() {
		t.Fatal("Connected() = false after discovery")
	}
	if got := len(m.Domains()); got != n {
		t.Fatalf("Domains() = %d, want %d", got, n)
	}
	if e, _ := rec.find(func(e Event) bool { return e.Type == EventDomainAdded }); e.Lifecycle != LifecycleDiscovered {
		t.Errorf("startup Added lifecycle = %v, want Discovered", e.Lifecycle)
	}
	for i := 0; i < n; i++ {
		d, ok := m.Domain(testDomainUUID(i))
		if !ok {
			t.Fatalf("domain %d missing", i)
		}
		if d.Name != fmt.Sprintf("dom%04d", i) || d.State != StateRunning || !d.Persistent {
			t.Fatalf("domain %d = %+v", i, d)
		}
		wantHint, wantOGA, wantOGAName := guest.ChannelUnknown, "", ""
		wantPlacement, wantQGA := Placement{Publish: true}, true
		switch i % 6 {
		case 0:
			wantHint, wantOGA, wantOGAName = guest.ChannelConnected, fmt.Sprintf("/run/t/%d.oga", i), OGAChannelName
		case 1:
			wantHint, wantOGA, wantOGAName = guest.ChannelDisconnected, fmt.Sprintf("/run/t/%d.legacy", i), OGALegacyChannelName
		case 2:
			wantPlacement.Namespace = "tenant-a"
		case 3:
			wantPlacement.Publish, wantQGA = false, false
		case 4:
			wantHint, wantOGA, wantOGAName = guest.ChannelConnected, fmt.Sprintf("/run/t/%d.oga", i), OGAChannelName
		case 5:
			wantQGA = false
		}
		// libvirt's test driver parses its node file as inactive config and drops the
		// channel target's state attribute, so the hint is always Unknown here; the hint
		// logic itself is covered by TestChannelBootstrapPrecedence and the real-libvirt tier.
		_ = wantHint
		wantHint = guest.ChannelUnknown
		if d.HasQGAChannel != wantQGA || d.QGAChannelHint != wantHint || d.QGAChannel != wantHint {
			t.Errorf("domain %d qga: has=%v hint=%v eff=%v; want %v %v", i, d.HasQGAChannel, d.QGAChannelHint, d.QGAChannel, wantQGA, wantHint)
		}
		if d.OGASocketPath != wantOGA || d.OGAChannelName != wantOGAName {
			t.Errorf("domain %d oga = %q/%q, want %q/%q", i, d.OGASocketPath, d.OGAChannelName, wantOGA, wantOGAName)
		}
		if d.Placement != wantPlacement {
			t.Errorf("domain %d placement = %+v, want %+v", i, d.Placement, wantPlacement)
		}
	}
}

func TestManagerTestDriverLifecycleAndChannelPrecedence(t *testing.T) {
	uri := "test://" + writeNodeXML(t, 12)
	m, rec := startManager(t, uri)
	NewWithT(t).Eventually(func() bool { return len(m.Domains()) == 12 }).WithTimeout(10*time.Second).Should(BeTrue(), "discovery")

	u0 := testDomainUUID(0) // XML hint: connected
	// An agent event says disconnected: events win over the XML hint from now on.
	m.push(rawEvent{kind: rawAgent, gen: 1, uuid: u0, name: "dom0000", agent: libvirt.CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED})
	NewWithT(t).Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool { return e.Type == EventAgentChannel && e.Domain.UUID == u0 })
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "agent channel event")
	d, err := m.LookupDomain(u0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Free() }()

	// suspend → Updated/Suspended, state Paused; the XML re-read must not override the event
	if err := d.Suspend(); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool {
			return e.Type == EventDomainUpdated && e.Domain.UUID == u0 && e.Lifecycle == LifecycleSuspended && e.Domain.State == StatePaused &&
				e.Domain.StateReason == "User"
		})
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "suspend event")
	if s, _ := m.Domain(u0); s.QGAChannel != guest.ChannelDisconnected {
		t.Errorf("after XML refresh: channel=%v; the event state must win", s.QGAChannel)
	}
	if err := d.Resume(); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool {
			return e.Domain.UUID == u0 && e.Lifecycle == LifecycleResumed && e.Domain.State == StateRunning &&
				e.Domain.StateReason == "Unpaused"
		})
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "resume event")
	// destroy → Stopped; the persistent domain stays known as ShutOff with channel Unknown
	if err := d.Destroy(); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool {
			return e.Type == EventDomainUpdated && e.Domain.UUID == u0 && e.Lifecycle == LifecycleStopped && e.Domain.State == StateShutOff &&
				e.Domain.StateReason == "Destroyed"
		})
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "stop event")
	if s, _ := m.Domain(u0); s.QGAChannel != guest.ChannelUnknown {
		t.Errorf("stopped domain channel = %v, want Unknown", s.QGAChannel)
	}
	// start again → Started; the hint applies again (a new QEMU process voids old events)
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool {
			return e.Domain.UUID == u0 && e.Lifecycle == LifecycleStarted && e.Domain.State == StateRunning &&
				e.Domain.StateReason == "Booted"
		})
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "start event")
	if err := d.Destroy(); err != nil {
		t.Fatal(err)
	}
	// undefine → Removed
	if err := d.Undefine(); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool { return e.Type == EventDomainRemoved && e.Domain.UUID == u0 })
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "removed event")
	if _, ok := m.Domain(u0); ok {
		t.Error("undefined domain still known")
	}

	// metadata change → placement updated
	u2 := testDomainUUID(2)
	d2, err := m.LookupDomain(u2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d2.Free() }()
	err = d2.SetMetadata(libvirt.DOMAIN_METADATA_ELEMENT, PlacementXML(Placement{Namespace: "tenant-b", Publish: false}),
		"ga", "http://guestagent.io/xmlns/libvirt/v1", libvirt.DOMAIN_AFFECT_LIVE)
	if err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		s, _ := m.Domain(u2)
		return s.Placement == Placement{Namespace: "tenant-b", Publish: false}
	}).WithTimeout(5*time.Second).Should(BeTrue(), "placement update")

}

func TestManagerReconnectsToBadURI(t *testing.T) {
	// A URI that cannot open: Run keeps retrying with backoff, Connected stays false, and
	// cancelling returns promptly.
	m := NewManager(Config{URI: "test:///nonexistent/absent.xml", Log: testr.New(t), ReconnectMin: 20 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	if m.Connected() {
		t.Error("Connected() = true for an unopenable URI")
	}
	if _, err := m.LookupDomain("x"); err == nil {
		t.Error("LookupDomain without connection: want error")
	}
}

func TestChannelBootstrapPrecedence(t *testing.T) {
	m := NewManager(Config{Log: testr.New(t)})
	rec := &recorder{}
	base := Domain{UUID: "u1", Name: "d1", State: StateRunning, Persistent: true, HasQGAChannel: true}
	withHint := func(st State, h guest.ChannelState) Domain { d := base; d.State = st; d.QGAChannelHint = h; return d }
	eff := func() guest.ChannelState { d, _ := m.Domain("u1"); return d.QGAChannel }
	agent := func(st libvirt.ConnectDomainEventAgentLifecycleState) {
		m.handleRaw(nil, rawEvent{kind: rawAgent, uuid: "u1", name: "d1", agent: st}, rec.handle)
	}

	m.upsert(withHint(StateRunning, guest.ChannelConnected), LifecycleDiscovered, "test", true, rec.handle)
	if eff() != guest.ChannelConnected {
		t.Fatalf("bootstrap from hint: %v", eff())
	}
	agent(libvirt.CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED)
	if eff() != guest.ChannelDisconnected {
		t.Fatalf("event: %v", eff())
	}
	if n := rec.count(func(e Event) bool { return e.Type == EventAgentChannel }); n != 1 {
		t.Fatalf("AgentChannel events = %d, want 1", n)
	}
	// a later XML refresh with a stale hint must not override the event
	m.upsert(withHint(StateRunning, guest.ChannelConnected), LifecycleMetadataChanged, "test", false, rec.handle)
	if eff() != guest.ChannelDisconnected {
		t.Fatalf("hint overrode event: %v", eff())
	}
	// a repeated identical event is not re-delivered
	agent(libvirt.CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED)
	if n := rec.count(func(e Event) bool { return e.Type == EventAgentChannel }); n != 1 {
		t.Fatalf("duplicate event delivered: %d", n)
	}
	// stop: no channel at all
	m.upsert(withHint(StateShutOff, guest.ChannelUnknown), LifecycleStopped, "test", false, rec.handle)
	if eff() != guest.ChannelUnknown {
		t.Fatalf("stopped: %v", eff())
	}
	// restart: the hint applies again
	m.upsert(withHint(StateRunning, guest.ChannelDisconnected), LifecycleStarted, "test", false, rec.handle)
	if eff() != guest.ChannelDisconnected {
		t.Fatalf("restart hint: %v", eff())
	}
	agent(libvirt.CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED)
	// reconnect re-bootstrap: events may have been missed, so the fresh hint wins once
	m.upsert(withHint(StateRunning, guest.ChannelDisconnected), LifecycleResynced, "test", true, rec.handle)
	if eff() != guest.ChannelDisconnected {
		t.Fatalf("reconnect re-bootstrap: %v", eff())
	}
	if _, ok := rec.find(func(e Event) bool { return e.Type == EventDomainUpdated && e.Lifecycle == LifecycleResynced }); !ok {
		t.Error("reconnect must deliver an Updated/Resynced event even without changes")
	}
}

// TestManagerConnectionDroppedAndReopened: libvirt reports the connection closed (as its close
// callback does when libvirtd goes away) while the node's domains change; the Manager reports the
// loss, reconnects, re-lists, and reports exactly the differences: the vanished domain removed,
// new ones added, the others kept (never removed and re-added, so their statuses stay).
func TestManagerConnectionDroppedAndReopened(t *testing.T) {
	path := writeNodeXML(t, 4)
	m, rec := startManager(t, "test://"+path)
	NewWithT(t).Eventually(func() bool { return m.Synced() && len(m.Domains()) == 4 }).WithTimeout(10*time.Second).Should(BeTrue(), "first listing")
	gen := m.gen.Load()
	lists, xmls := testutil.ToFloat64(callsList), testutil.ToFloat64(callsXML)

	// "libvirtd restarts" with another set of domains: 0, 2, 3 stay, 1 is gone, 4 and 5 are new.
	next, err := os.ReadFile(writeNodeXML(t, 6))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(next), "<domain type='test'><name>dom0001</name>")
	end := strings.Index(string(next), "<domain type='test'><name>dom0002</name>")
	if start < 0 || end < start {
		t.Fatal("generated node XML changed shape")
	}
	next = append(next[:start:start], next[end:]...)
	if err := os.WriteFile(path, next, 0o600); err != nil {
		t.Fatal(err)
	}
	m.push(rawEvent{kind: rawClosed, gen: gen})

	NewWithT(t).Eventually(func() bool {
		_, restored := rec.find(func(e Event) bool { return e.Type == EventConnectionRestored })
		return restored && m.Synced() && m.gen.Load() != gen
	}).WithTimeout(10*time.Second).Should(BeTrue(), "reconnected and re-listed")
	if _, ok := rec.find(func(e Event) bool { return e.Type == EventConnectionLost }); !ok {
		t.Error("no ConnectionLost event")
	}
	var uuids []string
	for _, d := range m.Domains() {
		uuids = append(uuids, d.UUID)
	}
	want := []string{testDomainUUID(0), testDomainUUID(2), testDomainUUID(3), testDomainUUID(4), testDomainUUID(5)}
	slices.Sort(uuids)
	if !slices.Equal(uuids, want) {
		t.Fatalf("domains after reconnect %v, want %v", uuids, want)
	}
	removed := func(i int) int {
		return rec.count(func(e Event) bool { return e.Type == EventDomainRemoved && e.Domain.UUID == testDomainUUID(i) })
	}
	added := func(i int) int {
		return rec.count(func(e Event) bool { return e.Type == EventDomainAdded && e.Domain.UUID == testDomainUUID(i) })
	}
	if removed(1) != 1 {
		t.Errorf("vanished domain removed %d times, want 1", removed(1))
	}
	for _, i := range []int{0, 2, 3} {
		if removed(i) != 0 || added(i) != 1 {
			t.Errorf("kept domain %d: removed %d, added %d times; want 0 and 1 (the first listing)", i, removed(i), added(i))
		}
	}
	for _, i := range []int{4, 5} {
		if added(i) != 1 {
			t.Errorf("new domain %d added %d times, want 1", i, added(i))
		}
	}
	// the re-listing is counted in guestagent_agentd_libvirt_calls_total: one listing, one XML read
	// per domain
	if d := testutil.ToFloat64(callsList) - lists; d != 1 {
		t.Errorf("list_domains calls during the reconnect: %v, want 1", d)
	}
	if d := testutil.ToFloat64(callsXML) - xmls; d != 5 {
		t.Errorf("domain_xml calls during the reconnect: %v, want 5", d)
	}
	// the new connection serves calls
	if _, err := m.LookupDomain(testDomainUUID(4)); err != nil {
		t.Fatalf("lookup on the re-opened connection: %v", err)
	}
}

// A Hibernate's host step on libvirt's test driver: PowerButton.ManagedSave stops the domain with
// STOPPED/SAVED (LifecycleSaved, shut off, reason Saved) and leaves a managed save image; the next
// start restores it and consumes the image. (The test driver reports that start as STARTED/BOOTED;
// the QEMU driver says STARTED/RESTORED, LifecycleRestored, which sends after_hibernation: that
// part needs real libvirt.)
func TestManagedSaveTestDriver(t *testing.T) {
	g := NewWithT(t)
	uri := "test://" + writeNodeXML(t, 2)
	m, rec := startManager(t, uri)
	g.Eventually(func() bool { return len(m.Domains()) == 2 }).WithTimeout(10*time.Second).Should(BeTrue(), "discovery")
	u := testDomainUUID(1)
	pb := PowerButton{M: m}
	ctx := context.Background()
	if has, err := pb.HasManagedSaveImage(ctx, u); err != nil || has {
		t.Fatalf("before the save: image %v, %v", has, err)
	}
	g.Expect(pb.ManagedSave(ctx, u)).To(Succeed())
	g.Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool {
			return e.Type == EventDomainUpdated && e.Domain.UUID == u && e.Lifecycle == LifecycleSaved &&
				e.Domain.State == StateShutOff && e.Domain.StateReason == "Saved"
		})
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "saved event")
	has, err := pb.HasManagedSaveImage(ctx, u)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(has).To(BeTrue(), "managed save image after the save")
	g.Expect(pb.ManagedSave(ctx, u)).NotTo(Succeed(), "a shut-off domain cannot be saved")

	d, err := m.LookupDomain(u)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = d.Free() }()
	g.Expect(d.Create()).To(Succeed())
	g.Eventually(func() bool {
		_, ok := rec.find(func(e Event) bool {
			return e.Domain.UUID == u && (e.Lifecycle == LifecycleRestored || e.Lifecycle == LifecycleStarted) && e.Domain.State == StateRunning
		})
		return ok
	}).WithTimeout(5*time.Second).Should(BeTrue(), "started event")
	has, err = pb.HasManagedSaveImage(ctx, u)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(has).To(BeFalse(), "the restore consumes the image")
	if _, err := pb.HasManagedSaveImage(ctx, "6a1e0000-0000-4000-8000-999999999999"); err == nil {
		t.Error("an unknown domain must be an error")
	}
}
