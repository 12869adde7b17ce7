package qga

// Tests against a REAL libvirtd with TCG guests running Debian's qemu-ga. They run only when
// GA_REAL_LIBVIRT=1; set the environment up with (see docs/qga.md):
//
//	hack/libvirt-env.sh && eval "$(hack/libvirt-env.sh env)"
//	for g in ga-t1 ga-t2; do hack/guest.sh up $g & done; wait
//	go test -race -run Real -v ./agentd/qga/
//	for g in ga-t1 ga-t2; do hack/guest.sh down $g; done
//
// TestRealLibvirt boots one more guest itself (ga-life, with a disk and an OGA channel) to observe
// lifecycle and agent events, suspends/resumes and hangs the pre-booted guests, and restarts
// libvirtd under the watcher. The freeze and disk hotplug tests boot a guest with a disk each
// (ga-freeze, ga-hot).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	"libvirt.org/go/libvirt"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
	"guestagent.io/operator/internal/hostcmd"
)

func realEnv(t *testing.T) (guests []string) {
	t.Helper()
	if os.Getenv("GA_REAL_LIBVIRT") != "1" {
		t.Skip("GA_REAL_LIBVIRT=1 not set (hack/libvirt-env.sh sets up the real stack)")
	}
	g := os.Getenv("GA_TEST_GUESTS")
	if g == "" {
		g = "ga-t1,ga-t2"
	}
	return strings.Split(g, ",")
}

func hackScript(name string) string { return filepath.Join("..", "..", "hack", name) }

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := hostcmd.Output(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventLog records virt events with their arrival time.
type eventLog struct {
	mu  sync.Mutex
	evs []virt.Event
	at  []time.Time
}

func (l *eventLog) add(ev virt.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
}

func (l *eventLog) find(since int, f func(virt.Event) bool) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := since; k < len(l.evs); k++ {
		if f(l.evs[k]) {
			return l.at[k], true
		}
	}
	return time.Time{}, false
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.evs)
}

func complete(i *guest.Info, name string) bool {
	return i != nil && i.Hostname != nil && i.Hostname.Name == name && i.OS != nil && i.Timezone != nil && i.Users != nil &&
		HasRoutableAddress(i.Network) && i.VCPUs != nil
}

func uuidOf(m *virt.Manager, name string) string {
	for _, d := range m.Domains() {
		if d.Name == name {
			return d.UUID
		}
	}
	return ""
}

func TestRealLibvirt(t *testing.T) {
	guests := realEnv(t)
	logr := testr.New(t)
	m := virt.NewManager(virt.Config{URI: virt.DefaultURI, Log: logr.WithName("virt"), ReconnectMin: 200 * time.Millisecond, ReconnectMax: time.Second})
	events := &eventLog{}
	api := NewLibvirtAPI(m.LookupDomain)
	rec := newRecordingAPI(api) // the poller's calls; the test's own calls go to api directly
	p, err := NewQemuGuestAgentPoller(Config{API: rec, Domains: m.Domains, Log: logr.WithName("qga"), Tick: time.Second,
		Periods:         Periods{Users: time.Second, CPUs: 5 * time.Second, Sys: 5 * time.Second, Disks: 5 * time.Second},
		FailureThrottle: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = m.Run(ctx, func(ev virt.Event) { events.add(ev); p.HandleEvent(ev) }) }()
	go func() { defer wg.Done(); _ = p.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	// --- startup discovery of guests that were running before the watcher started
	NewWithT(t).Eventually(func() bool {
		for _, g := range guests {
			if d, ok := m.Domain(uuidOf(m, g)); !ok || d.State != virt.StateRunning || d.QGAChannel != guest.ChannelConnected {
				return false
			}
		}
		return true
	}).WithTimeout(30*time.Second).Should(BeTrue(), "discovery of pre-booted guests")
	for _, g := range guests {
		NewWithT(t).Eventually(func() bool {
			_, ok := events.find(0, func(e virt.Event) bool {
				return e.Type == virt.EventDomainAdded && e.Domain.Name == g && e.Lifecycle == virt.LifecycleDiscovered
			})
			return ok
		}).WithTimeout(5*time.Second).Should(BeTrue(), "Added/Discovered event for "+g)
	}

	// --- every info type on the pre-booted guests
	for _, g := range guests {
		u := uuidOf(m, g)
		NewWithT(t).Eventually(func() bool { i, _ := p.Info(u); return complete(i, g) }).WithTimeout(90*time.Second).Should(BeTrue(), "complete data for "+g)
		i, _ := p.Info(u)
		st, _ := p.State(u)
		if i.OS.Type != guest.OSTypeLinux || i.OS.Arch != "x86_64" || !strings.HasPrefix(i.OS.KernelRelease, "6.1.") || i.OS.ID != "debian" {
			t.Errorf("%s OS = %+v", g, i.OS)
		}
		if i.Timezone.Zone != "UTC" || i.Timezone.OffsetMinutes != 0 || len(i.Users.List) != 0 || i.VCPUs.Online != 1 {
			t.Errorf("%s tz=%+v users=%+v vcpus=%+v", g, i.Timezone, i.Users, i.VCPUs)
		}
		eth := slices.IndexFunc(i.Network.Interfaces, func(n guest.Interface) bool { return n.Name == "eth0" })
		lo := slices.IndexFunc(i.Network.Interfaces, func(n guest.Interface) bool { return n.Name == "lo" })
		if eth < 0 || lo < 0 || !slices.Contains(i.Network.Interfaces[eth].IPv4, "10.0.2.15/24") || !strings.HasPrefix(i.Network.Interfaces[eth].MAC, "52:54:00:") {
			t.Errorf("%s network = %+v", g, i.Network.Interfaces)
		}
		if st.Version == "" || !st.Responsive || !slices.Contains(st.SupportedCommands, CmdOSInfo) {
			t.Errorf("%s state = %+v", g, st)
		}
		// Linux qemu-ga 7.2 lists guest-get-devices (Windows only) as disabled: it is reported
		// as unsupported, never sent, and no PCI devices are published. Nothing else the
		// status lists is missing, and no call failed because of it.
		if slices.Contains(st.SupportedCommands, CmdDevices) || !slices.Equal(st.UnsupportedCommands, []string{CmdDevices}) {
			t.Errorf("%s: guest-get-devices should be the only unsupported command: supported %v, unsupported %v", g, st.SupportedCommands, st.UnsupportedCommands)
		}
		if i.PCIDevices != nil {
			t.Errorf("%s: PCI devices published without guest-get-devices: %+v", g, i.PCIDevices)
		}
		if n := rec.count(u, CmdDevices); n != 0 {
			t.Errorf("%s: guest-get-devices sent %d times although disabled", g, n)
		}
		if st.LastError != nil && st.LastError.Command == CmdDevices {
			t.Errorf("%s: last error is about guest-get-devices: %+v", g, st.LastError)
		}
		t.Logf("%s: agent %s, %d commands, unsupported %v", g, st.Version, len(st.SupportedCommands), st.UnsupportedCommands)
	}

	// --- per-call latencies on a real guest
	u1 := uuidOf(m, guests[0])
	measure := func(name string, f func() error) {
		var ds []time.Duration
		for k := 0; k < 15; k++ {
			t0 := time.Now()
			if err := f(); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			ds = append(ds, time.Since(t0))
		}
		sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
		t.Logf("latency %-28s p50=%v max=%v", name, ds[len(ds)/2].Round(100*time.Microsecond), ds[len(ds)-1].Round(100*time.Microsecond))
	}
	bg := context.Background()
	to := 3 * time.Second
	measure("raw guest-info", func() error { _, err := api.Raw(bg, u1, CmdInfo, to); return err })
	measure("raw guest-ping", func() error { _, err := api.Raw(bg, u1, CmdPing, to); return err })
	for _, it := range []InfoType{InfoUsers, InfoOS, InfoTimezone, InfoHostname, InfoFilesystem, InfoDisks} {
		measure("GetGuestInfo "+it.Command(), func() error { _, err := api.GuestInfo(bg, u1, it, to); return err })
	}
	measure("InterfaceAddresses(agent)", func() error { _, err := api.Interfaces(bg, u1, to); return err })
	measure("GetGuestVcpus", func() error { _, err := api.VCPUs(bg, u1, to); return err })

	// --- a guest booted now: lifecycle + agent events, time to first complete data, disk/fs, OGA
	const life = "ga-life"
	genv := []string{"QGA_DISK=1", "WITH_OGA=1"}
	run(t, genv, hackScript("guest.sh"), "down", life)
	t.Cleanup(func() { _ = exec.Command(hackScript("guest.sh"), "down", life).Run() })
	run(t, genv, "sh", "-c", hackScript("guest.sh")+" xml "+life+" | virsh -c qemu:///system define /dev/stdin")
	mark := events.len()
	t0 := time.Now()
	run(t, nil, "virsh", "-c", "qemu:///system", "start", life)
	var lu string
	NewWithT(t).Eventually(func() bool {
		_, ok := events.find(mark, func(e virt.Event) bool { return e.Domain.Name == life && e.Lifecycle == virt.LifecycleStarted })
		lu = uuidOf(m, life)
		return ok
	}).WithTimeout(30*time.Second).Should(BeTrue(), "Started event")
	NewWithT(t).Eventually(func() bool {
		_, ok := events.find(mark, func(e virt.Event) bool {
			return e.Type == virt.EventAgentChannel && e.Domain.Name == life && e.Domain.QGAChannel == guest.ChannelConnected
		})
		return ok
	}).WithTimeout(120*time.Second).Should(BeTrue(), "agent connected event")
	tConn := time.Since(t0)
	NewWithT(t).Eventually(func() bool {
		i, _ := p.Info(lu)
		return complete(i, life) && i.Filesystems != nil && len(i.Filesystems.List) > 0 && i.Disks != nil && len(i.Disks.Mappings) > 0
	}).WithTimeout(120*time.Second).WithPolling(20*time.Millisecond).Should(BeTrue(), func() string {
		i, _ := p.Info(lu)
		st, _ := p.State(lu)
		return fmt.Sprintf("complete data for %s: info=%+v state=%+v", life, i, st)
	})
	t.Logf("%s: agent connected %v after virsh start, first complete data after %v", life, tConn.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond))
	i, _ := p.Info(lu)
	if fs := i.Filesystems.List[0]; fs.Mountpoint != "/mnt/data" || fs.Type != "ext4" || !fs.HasUsage || fs.TotalBytes == 0 || !slices.Contains(fs.Disks, "/dev/vda") {
		t.Errorf("fs = %+v", i.Filesystems.List)
	}
	if !slices.Contains(i.Disks.Mappings, guest.DiskMapping{Serial: "qgadisk-" + life, Device: "/dev/vda"}) {
		t.Errorf("disk mapping = %+v", i.Disks.Mappings)
	}
	if d, _ := m.Domain(lu); d.OGAChannelName != virt.OGAChannelName || !strings.HasSuffix(d.OGASocketPath, life+".ovirt-guest-agent.0") {
		t.Errorf("OGA socket = %q (%q)", d.OGASocketPath, d.OGAChannelName)
	}

	// --- request methods: ping, set-time, freeze/thaw, then agent shutdown → disconnect + stop
	for name, f := range map[string]func() error{
		"ping":    func() error { return p.Ping(bg, lu) },
		"settime": func() error { return p.SetTime(bg, lu) },
	} {
		if err := f(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := p.FSFreeze(bg, lu, nil); err != nil {
		t.Errorf("fsfreeze: %v", err)
	} else if err := p.FSThaw(bg, lu, nil); err != nil {
		t.Errorf("fsthaw: %v", err)
	}
	mark = events.len()
	if err := p.Shutdown(bg, lu, ShutdownPowerdown); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// (libvirt 9.0's AGENT_LIFECYCLE "disconnected" on shutdown is racy; Stopped is not)
	NewWithT(t).Eventually(func() bool {
		_, stop := events.find(mark, func(e virt.Event) bool {
			return e.Domain.UUID == lu && e.Lifecycle == virt.LifecycleStopped && e.Domain.QGAChannel != guest.ChannelConnected
		})
		return stop
	}).WithTimeout(60*time.Second).Should(BeTrue(), "stopped, channel no longer connected")
	if st, _ := p.State(lu); st.Responsive || st.Channel == guest.ChannelConnected {
		NewWithT(t).Eventually(func() bool {
			p.Tick()
			s, _ := p.State(lu)
			return !s.Responsive && s.Channel != guest.ChannelConnected
		}).WithTimeout(10*time.Second).Should(BeTrue(), "poller sees the stopped guest")
	}

	// --- a hung agent fails cleanly within the timeout while the other guest keeps being polled
	if len(guests) >= 2 {
		u2 := uuidOf(m, guests[1])
		d, err := m.LookupDomain(u1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.QemuAgentCommand(`{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","kill -STOP $(pidof qemu-ga); sleep 12; kill -CONT $(pidof qemu-ga)"]}}`, libvirt.DOMAIN_QEMU_AGENT_COMMAND_DEFAULT, 0)
		_ = d.Free()
		if err != nil {
			t.Fatal(err)
		}
		// The script stops qemu-ga a moment after guest-exec returns: calls succeed until then.
		var el time.Duration
		NewWithT(t).Eventually(func() ErrorClass {
			t0 := time.Now()
			_, err = api.GuestInfo(bg, u1, InfoHostname, time.Second)
			el = time.Since(t0)
			return ClassOf(err)
		}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Equal(ErrTimeout), "hung agent: class of the failed call")
		t.Logf("hung agent: GetGuestInfo failed after %v: %v", el.Round(time.Millisecond), err)
		if el > 5*time.Second { // GetGuestInfo (1 s) + confirming guest-ping (1 s)
			t.Errorf("hung agent call took %v", el)
		}
		st2, _ := p.State(u2)
		before := st2.LastSuccess
		NewWithT(t).Eventually(func() bool {
			s, _ := p.State(u1)
			return !s.Responsive && s.LastError != nil && s.LastError.Class == ErrTimeout
		}).WithTimeout(30*time.Second).Should(BeTrue(), "poller marks the hung agent unresponsive")
		NewWithT(t).Eventually(func() bool {
			s, _ := p.State(u2)
			return s.LastSuccess.After(before) && s.Responsive
		}).WithTimeout(15*time.Second).Should(BeTrue(), "other guest still polled")
		NewWithT(t).Eventually(func() bool { s, _ := p.State(u1); return s.Responsive }).WithTimeout(60*time.Second).Should(BeTrue(), "hung agent recovers")

		// --- paused domain: fails as DomainNotRunning quickly; the poller skips it
		run(t, nil, "virsh", "-c", "qemu:///system", "suspend", guests[1])
		NewWithT(t).Eventually(func() bool { d, _ := m.Domain(u2); return d.State == virt.StatePaused }).WithTimeout(10*time.Second).Should(BeTrue(), "paused state")
		t0 = time.Now()
		_, err = api.GuestInfo(bg, u2, InfoOS, time.Second)
		if c := ClassOf(err); c != ErrDomainNotRunning {
			t.Errorf("paused: class %v (%v)", c, err)
		}
		t.Logf("paused domain: call failed after %v", time.Since(t0).Round(time.Millisecond))
		s2, _ := p.State(u2)
		NewWithT(t).Consistently(func() time.Time { s, _ := p.State(u2); return s.LastSuccess }).WithTimeout(3*time.Second).
			Should(Equal(s2.LastSuccess), "last successful poll of the paused domain")
		run(t, nil, "virsh", "-c", "qemu:///system", "resume", guests[1])
		NewWithT(t).Eventually(func() bool { s, _ := p.State(u2); return s.LastSuccess.After(s2.LastSuccess) }).WithTimeout(30*time.Second).Should(BeTrue(), "resumed domain polled again")
	}

	// --- libvirtd restarted under the watcher: reconnect, re-list, events re-registered
	pidb, err := os.ReadFile("/run/libvirtd.pid")
	if err != nil {
		t.Fatalf("libvirtd pid: %v", err)
	}
	mark = events.len()
	run(t, nil, "kill", strings.TrimSpace(string(pidb)))
	NewWithT(t).Eventually(func() bool {
		_, ok := events.find(mark, func(e virt.Event) bool { return e.Type == virt.EventConnectionLost })
		return ok && !m.Connected()
	}).WithTimeout(30*time.Second).Should(BeTrue(), "connection lost")
	NewWithT(t).Eventually(func() bool { return exec.Command("kill", "-0", strings.TrimSpace(string(pidb))).Run() != nil }).WithTimeout(10*time.Second).Should(BeTrue(), "libvirtd exit")
	run(t, nil, "libvirtd", "-d")
	NewWithT(t).Eventually(func() bool {
		_, ok := events.find(mark, func(e virt.Event) bool { return e.Type == virt.EventConnectionRestored })
		return ok && m.Connected()
	}).WithTimeout(60*time.Second).Should(BeTrue(), "connection restored")
	for _, g := range guests {
		if d, ok := m.Domain(uuidOf(m, g)); !ok || d.State != virt.StateRunning || d.QGAChannel != guest.ChannelConnected {
			t.Errorf("%s after reconnect: %+v", g, d)
		}
	}
	mark = events.len()
	g := guests[len(guests)-1]
	run(t, nil, "virsh", "-c", "qemu:///system", "suspend", g)
	run(t, nil, "virsh", "-c", "qemu:///system", "resume", g)
	NewWithT(t).Eventually(func() bool {
		_, ok := events.find(mark, func(e virt.Event) bool { return e.Domain.Name == g && e.Lifecycle == virt.LifecycleResumed })
		return ok
	}).WithTimeout(15*time.Second).Should(BeTrue(), "events after reconnect")
	u := uuidOf(m, g)
	st, _ := p.State(u)
	NewWithT(t).Eventually(func() bool { s, _ := p.State(u); return s.LastSuccess.After(st.LastSuccess) }).WithTimeout(30*time.Second).Should(BeTrue(), "polling after reconnect")
}

// TestRealAgentTimeoutRestored: agentd bounds its own agent calls with a short response timeout,
// and the node's libvirtd is shared with other clients (virsh, backup tools): after each call the
// domain's agent timeout must be back at BLOCK, libvirt's own behaviour, not agentd's 1 s. libvirt
// keeps the timeout in the domain's status XML (<agentTimeout>, written when it is not the
// default), which the test reads back after calls that succeeded and after one that timed out.
func TestRealAgentTimeoutRestored(t *testing.T) {
	guests := realEnv(t)
	conn, err := libvirt.NewConnect(virt.DefaultURI)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Close() }()
	dom, err := conn.LookupDomainByName(guests[0])
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dom.Free() }()
	uuid, err := dom.GetUUIDString()
	if err != nil {
		t.Fatal(err)
	}
	api := NewLibvirtAPI(func(string) (*libvirt.Domain, error) { return conn.LookupDomainByUUIDString(uuid) })
	status := filepath.Join("/run/libvirt/qemu", guests[0]+".xml")
	timeoutNow := func() string {
		b, err := os.ReadFile(status)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i := strings.Index(s, "<agentTimeout>")
		if i < 0 {
			return "default"
		}
		return s[i+len("<agentTimeout>") : i+strings.Index(s[i:], "</agentTimeout>")]
	}
	blocked := strconv.Itoa(int(libvirt.DOMAIN_AGENT_RESPONSE_TIMEOUT_BLOCK))
	bg := context.Background()
	NewWithT(t).Eventually(func() error {
		_, err := api.GuestInfo(bg, uuid, InfoHostname, time.Second)
		return err
	}).WithTimeout(60 * time.Second).Should(Succeed())
	if got := timeoutNow(); got != blocked {
		t.Errorf("agent timeout after a successful call: %s, want %s (BLOCK)", got, blocked)
	}
	if _, err := api.Raw(bg, uuid, CmdPing, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := timeoutNow(); got != blocked {
		t.Errorf("agent timeout after a raw call: %s, want %s (BLOCK)", got, blocked)
	}

	// a hung agent: agentd's call times out after its bound; the timeout is restored all the same
	_, err = dom.QemuAgentCommand(`{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","kill -STOP $(pidof qemu-ga); sleep 6; kill -CONT $(pidof qemu-ga)"]}}`, libvirt.DOMAIN_QEMU_AGENT_COMMAND_DEFAULT, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hung error
	NewWithT(t).Eventually(func() error {
		_, hung = api.GuestInfo(bg, uuid, InfoHostname, time.Second)
		return hung
	}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(HaveOccurred(), "hung agent")
	t.Logf("call to the hung agent: %s: %v", ClassOf(hung), hung)
	if got := timeoutNow(); got != blocked {
		t.Errorf("agent timeout after a failed call: %s, want %s (BLOCK)", got, blocked)
	}
	// the agent serves other clients again once it runs
	NewWithT(t).Eventually(func() error {
		_, err := dom.QemuAgentCommand(`{"execute":"guest-ping"}`, libvirt.DOMAIN_QEMU_AGENT_COMMAND_DEFAULT, 0)
		return err
	}).WithTimeout(30*time.Second).WithPolling(time.Second).Should(Succeed(), "agent back for other clients")
}

// recordingAPI is a DomainAPI recording the poll calls (and raw commands) made through it: per
// domain and command, when each call started and how it ended. It lets the real tests observe
// when a group was asked, refused or refreshed without looking into the poller.
type recordingAPI struct {
	DomainAPI
	mu    sync.Mutex
	calls map[string][]recordedCall // "<uuid> <cmd>" → calls in start order
}

type recordedCall struct {
	start time.Time
	class ErrorClass // "" on success
}

func newRecordingAPI(api DomainAPI) *recordingAPI {
	return &recordingAPI{DomainAPI: api, calls: map[string][]recordedCall{}}
}

func (r *recordingAPI) record(uuid, cmd string, start time.Time, err error) {
	r.mu.Lock()
	r.calls[uuid+" "+cmd] = append(r.calls[uuid+" "+cmd], recordedCall{start: start, class: ClassOf(err)})
	r.mu.Unlock()
}

// Raw implements DomainAPI.
func (r *recordingAPI) Raw(ctx context.Context, uuid, cmd string, timeout time.Duration) (json.RawMessage, error) {
	t0 := time.Now()
	out, err := r.DomainAPI.Raw(ctx, uuid, cmd, timeout)
	r.record(uuid, cmd, t0, err)
	return out, err
}

// GuestInfo implements DomainAPI.
func (r *recordingAPI) GuestInfo(ctx context.Context, uuid string, it InfoType, timeout time.Duration) (*GuestInfoReply, error) {
	t0 := time.Now()
	out, err := r.DomainAPI.GuestInfo(ctx, uuid, it, timeout)
	r.record(uuid, it.Command(), t0, err)
	return out, err
}

// Interfaces implements DomainAPI.
func (r *recordingAPI) Interfaces(ctx context.Context, uuid string, timeout time.Duration) ([]NetInterface, error) {
	t0 := time.Now()
	out, err := r.DomainAPI.Interfaces(ctx, uuid, timeout)
	r.record(uuid, CmdInterfaces, t0, err)
	return out, err
}

// VCPUs implements DomainAPI.
func (r *recordingAPI) VCPUs(ctx context.Context, uuid string, timeout time.Duration) ([]VCPU, error) {
	t0 := time.Now()
	out, err := r.DomainAPI.VCPUs(ctx, uuid, timeout)
	r.record(uuid, CmdVCPUs, t0, err)
	return out, err
}

// since returns the calls of cmd to uuid that started at or after t0.
func (r *recordingAPI) since(uuid, cmd string, t0 time.Time) []recordedCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recordedCall
	for _, c := range r.calls[uuid+" "+cmd] {
		if !c.start.Before(t0) {
			out = append(out, c)
		}
	}
	return out
}

func (r *recordingAPI) count(uuid, cmd string) int { return len(r.since(uuid, cmd, time.Time{})) }

// succeededSince reports whether a call of cmd to uuid that started at or after t0 succeeded.
func (r *recordingAPI) succeededSince(uuid, cmd string, t0 time.Time) bool {
	return slices.ContainsFunc(r.since(uuid, cmd, t0), func(c recordedCall) bool { return c.class == "" })
}

// realGuest boots a guest of its own for one test (hack/guest.sh up, which waits until its agent
// answers guest-ping) and shuts it down and undefines it when the test ends.
func realGuest(t *testing.T, name string, env ...string) {
	t.Helper()
	run(t, env, hackScript("guest.sh"), "down", name) // leftovers of an aborted run
	t.Cleanup(func() { _ = exec.Command(hackScript("guest.sh"), "down", name).Run() })
	run(t, env, hackScript("guest.sh"), "up", name)
}

// realPoller starts a libvirt watcher and a poller that polls only the named guest (the other
// guests on the node are other tests' business), fed with the watcher's events as
// GuestAgentService feeds them. The poller's calls go through the returned recordingAPI.
func realPoller(t *testing.T, name string, cfg Config) (*QemuGuestAgentPoller, *virt.Manager, *recordingAPI, *eventLog) {
	t.Helper()
	log := testr.New(t)
	m := virt.NewManager(virt.Config{URI: virt.DefaultURI, Log: log.WithName("virt"), ReconnectMin: 200 * time.Millisecond, ReconnectMax: time.Second})
	rec := newRecordingAPI(NewLibvirtAPI(m.LookupDomain))
	cfg.API = rec
	cfg.Log = log.WithName("qga")
	cfg.Domains = func() []virt.Domain {
		var out []virt.Domain
		for _, d := range m.Domains() {
			if d.Name == name {
				out = append(out, d)
			}
		}
		return out
	}
	p, err := NewQemuGuestAgentPoller(cfg)
	if err != nil {
		t.Fatal(err)
	}
	events := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = m.Run(ctx, func(ev virt.Event) {
			if ev.Domain.Name == name {
				events.add(ev)
				p.HandleEvent(ev)
			}
		})
	}()
	go func() { defer wg.Done(); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return p, m, rec, events
}

// agentCommand sends one command to the guest's agent the way other libvirt clients do (virsh
// qemu-agent-command), beside agentd, and returns its "return" member.
func agentCommand(t *testing.T, m *virt.Manager, uuid, cmd string, args any) json.RawMessage {
	t.Helper()
	msg := map[string]any{"execute": cmd}
	if args != nil {
		msg["arguments"] = args
	}
	req, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.LookupDomain(uuid)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Free() }()
	out, err := d.QemuAgentCommand(string(req), libvirt.DOMAIN_QEMU_AGENT_COMMAND_DEFAULT, 0)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	var r struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%s: %v (%s)", cmd, err, out)
	}
	return r.Return
}

// guestShell starts script with /bin/sh in the guest (guest-exec) and returns a function that
// reports whether it has exited, and with which code.
func guestShell(t *testing.T, m *virt.Manager, uuid, script string) func() (exited bool, code int) {
	t.Helper()
	var started struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(agentCommand(t, m, uuid, "guest-exec", map[string]any{"path": "/bin/sh", "arg": []string{"-c", script}}), &started); err != nil {
		t.Fatal(err)
	}
	return func() (bool, int) {
		var st struct {
			Exited   bool `json:"exited"`
			ExitCode int  `json:"exitcode"`
		}
		if err := json.Unmarshal(agentCommand(t, m, uuid, "guest-exec-status", map[string]any{"pid": started.PID}), &st); err != nil {
			t.Fatal(err)
		}
		return st.Exited, st.ExitCode
	}
}

// TestRealFreezeLongerThanThreePollPeriods (issue requirement: "freeze for longer than three poll
// periods, thaw, every group refreshes again") on a real guest whose /mnt/data (ext4 on a virtio
// disk) can be frozen. Every group, the capabilities and the metrics-only commands are polled
// every 1-3 s. While frozen, qemu-ga disables all but a few commands and lists them as disabled in
// guest-info: every group that comes due is asked and refused as Frozen (never Unsupported), the
// capabilities and the unsupported list stay as they were, the last known data stays, and
// State.FSFreeze is Frozen; GuestAgentService marks every QGA group stale while FSFreeze is Frozen
// (service.TestServiceFrozenQGAGroupsAreStale) and the publisher gives them the reason FilesystemsFrozen
// (publish.TestFreezePublishedWithStaleReason). After the thaw every polled command succeeds again.
// A freeze with nothing to freeze (a mountpoint list that matches nothing) leaves the agent thawed,
// and the state says so at once.
// waitForDiskData waits until the poller has complete data for guest name, filesystems and disk
// mappings included, and returns its UUID.
func waitForDiskData(t *testing.T, p *QemuGuestAgentPoller, m *virt.Manager, name string) string {
	t.Helper()
	var u string
	NewWithT(t).Eventually(func() bool {
		u = uuidOf(m, name)
		i, _ := p.Info(u)
		return u != "" && complete(i, name) && i.Filesystems != nil && len(i.Filesystems.List) > 0 && i.Disks != nil && len(i.Disks.Mappings) > 0
	}).WithTimeout(90*time.Second).Should(BeTrue(), "complete data for "+name)
	return u
}

func TestRealFreezeLongerThanThreePollPeriods(t *testing.T) {
	realEnv(t)
	const name = "ga-freeze"
	realGuest(t, name, "QGA_DISK=1")
	periods := Periods{Caps: 3 * time.Second, Users: time.Second, Sys: 2 * time.Second, CPUs: 2 * time.Second, Disks: 2 * time.Second, Stats: 2 * time.Second}
	longest := periods.Caps
	p, m, rec, _ := realPoller(t, name, Config{Tick: time.Second, Periods: periods, FailureThrottle: 3 * time.Second})
	bg := context.Background()

	u := waitForDiskData(t, p, m, name)
	st0, _ := p.State(u)
	// the commands the poller polls on this agent: guest-info and every enabled command of a task
	polled := []string{CmdInfo}
	for tk := tUsers; tk < numTasks; tk++ {
		if slices.Contains(st0.SupportedCommands, taskCmd[tk]) {
			polled = append(polled, taskCmd[tk])
		}
	}
	for _, c := range []string{CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdVCPUs, CmdFSInfo, CmdDisks, CmdCPUStats, CmdDiskStats} {
		if !slices.Contains(polled, c) {
			t.Fatalf("qemu-ga does not enable %s: supported %v", c, st0.SupportedCommands)
		}
	}
	NewWithT(t).Eventually(func() []string {
		var missing []string
		for _, c := range polled {
			if !rec.succeededSince(u, c, time.Time{}) {
				missing = append(missing, c)
			}
		}
		return missing
	}).WithTimeout(30*time.Second).Should(BeEmpty(), "every polled command answered once")
	info0, _ := p.Info(u)
	st0, _ = p.State(u)
	if st0.FSFreeze != "" || !st0.Responsive {
		t.Fatalf("before any freeze: %+v", st0)
	}
	t.Logf("%s: polled commands %v; unsupported %v", name, polled, st0.UnsupportedCommands)

	// --- a freeze that freezes nothing: success, and the agent stays thawed
	tNothing := time.Now()
	if state, err := p.FSFreeze(bg, u, []string{"/no/such/mountpoint"}); err != nil || state != FreezeThawed {
		t.Fatalf("freeze of a mountpoint that does not exist: state %q, %v", state, err)
	}
	if st, _ := p.State(u); st.FSFreeze != FreezeThawed {
		t.Errorf("after a freeze that froze nothing: fsFreeze %q, want %q", st.FSFreeze, FreezeThawed)
	}
	if s := string(agentCommand(t, m, u, CmdFSFreezeState, nil)); s != `"thawed"` {
		t.Fatalf("guest-fsfreeze-status after a freeze that froze nothing: %s", s)
	}
	NewWithT(t).Eventually(func() bool { return rec.succeededSince(u, CmdHostName, tNothing) }).WithTimeout(10*time.Second).
		Should(BeTrue(), "groups keep refreshing after a freeze that froze nothing")

	// --- the real freeze, held until every polled command was asked four times while frozen
	t.Cleanup(func() { _ = p.FSThaw(bg, u, nil) }) // never leave the guest frozen
	if state, err := p.FSFreeze(bg, u, nil); err != nil || state != FreezeFrozen {
		t.Fatalf("freeze: state %q, %v", state, err)
	}
	tFreeze := time.Now() // every call starting from now meets the frozen agent
	if st, _ := p.State(u); st.FSFreeze != FreezeFrozen {
		t.Fatalf("after the freeze: fsFreeze %q, want %q", st.FSFreeze, FreezeFrozen)
	}
	if s := string(agentCommand(t, m, u, CmdFSFreezeState, nil)); s != `"frozen"` {
		t.Fatalf("guest-fsfreeze-status after the freeze: %s", s)
	}
	// the last known data: a poll run holds the agent lock until its results are in, so none
	// can change them after the freeze request got the lock
	infoFrozen, _ := p.Info(u)
	// frozen: checked at every poll, a violation ends the wait at once
	frozenHolds := func() error {
		st, _ := p.State(u)
		info, _ := p.Info(u)
		switch {
		case st.FSFreeze != FreezeFrozen:
			return fmt.Errorf("fsFreeze %q while frozen", st.FSFreeze)
		case !slices.Equal(st.SupportedCommands, st0.SupportedCommands):
			return fmt.Errorf("capabilities changed while frozen: %v, were %v", st.SupportedCommands, st0.SupportedCommands)
		case !slices.Equal(st.UnsupportedCommands, st0.UnsupportedCommands):
			return fmt.Errorf("unsupported commands changed while frozen: %v, were %v", st.UnsupportedCommands, st0.UnsupportedCommands)
		case !reflect.DeepEqual(info, infoFrozen):
			now, _ := json.Marshal(info)
			was, _ := json.Marshal(infoFrozen)
			return fmt.Errorf("data changed while frozen: %s, was %s", now, was)
		}
		return nil
	}
	NewWithT(t).Eventually(func() error {
		if err := frozenHolds(); err != nil {
			StopTrying(err.Error()).Now()
		}
		var short []string
		for _, c := range polled {
			calls := rec.since(u, c, tFreeze)
			for _, call := range calls {
				// guest-info still answers (with most commands disabled); everything else is refused
				if c != CmdInfo && call.class != ErrFrozen {
					StopTrying(fmt.Sprintf("%s while frozen: class %q, want %q", c, call.class, ErrFrozen)).Now()
				}
			}
			if len(calls) < 4 {
				short = append(short, fmt.Sprintf("%s×%d", c, len(calls)))
			}
		}
		if len(short) > 0 {
			return fmt.Errorf("not yet asked 4 times while frozen: %v", short)
		}
		return nil
	}).WithTimeout(120*time.Second).WithPolling(200*time.Millisecond).Should(Succeed(), "the freeze outlasts three periods of every group")
	held := time.Since(tFreeze)
	if held <= 3*longest {
		t.Errorf("freeze held %v, not longer than three periods (%v)", held, 3*longest)
	}
	st, _ := p.State(u)
	if st.LastError == nil || st.LastError.Class != ErrFrozen || !st.Responsive {
		t.Errorf("while frozen: the agent answers, its refusals are Frozen: %+v", st)
	}
	// each guest-info while frozen was checked against guest-fsfreeze-status (why capabilities stay)
	if reads, infos := len(rec.since(u, CmdFSFreezeState, tFreeze)), len(rec.since(u, CmdInfo, tFreeze)); reads < infos {
		t.Errorf("guest-fsfreeze-status read %d times for %d guest-info replies while frozen", reads, infos)
	}
	t.Logf("%s: frozen for %v; %d guest-info, %d guest-get-users calls while frozen", name, held.Round(100*time.Millisecond),
		len(rec.since(u, CmdInfo, tFreeze)), len(rec.since(u, CmdUsers, tFreeze)))

	// --- thaw: every polled command is asked again and answers; nothing became unsupported
	if err := p.FSThaw(bg, u, nil); err != nil {
		t.Fatalf("thaw: %v", err)
	}
	tThaw := time.Now()
	if st, _ := p.State(u); st.FSFreeze != FreezeThawed {
		t.Errorf("after the thaw: fsFreeze %q, want %q", st.FSFreeze, FreezeThawed)
	}
	NewWithT(t).Eventually(func() []string {
		var stale []string
		for _, c := range polled {
			if !rec.succeededSince(u, c, tThaw) {
				stale = append(stale, c)
			}
		}
		return stale
	}).WithTimeout(3*longest+20*time.Second).WithPolling(200*time.Millisecond).Should(BeEmpty(), "commands not refreshed since the thaw")
	t.Logf("%s: every polled command answered within %v of the thaw", name, time.Since(tThaw).Round(100*time.Millisecond))
	st, _ = p.State(u)
	info, _ := p.Info(u)
	if st.FSFreeze != FreezeThawed || !st.Responsive || !st.LastSuccess.After(tThaw) ||
		!slices.Equal(st.SupportedCommands, st0.SupportedCommands) || !slices.Equal(st.UnsupportedCommands, st0.UnsupportedCommands) {
		t.Errorf("after the thaw: %+v (before the freeze: %+v)", st, st0)
	}
	if !complete(info, name) || !reflect.DeepEqual(info.Disks, info0.Disks) || len(info.Filesystems.List) != len(info0.Filesystems.List) {
		t.Errorf("data after the thaw: %+v", info)
	}
	if s := p.Stats(u); s == nil || s.CPU == nil || s.Disks == nil {
		t.Errorf("metrics-only figures after the thaw: %+v", s)
	}
}

// TestRealDiskHotplugRefresh (issue 17): a disk hot-plugged into a running guest shows in its
// disk mapping and filesystems within HotplugRefreshDelay (+ a margin) of libvirt's DEVICE_ADDED
// event, although the filesystems/disks period is an hour: only the one-off hotplug refresh can
// explain it. Unplugging it removes it the same way. The guest has no udev: a guest-side script
// does what udev and an automounter would (records the disk serial for qemu-ga, mounts the disk).
func TestRealDiskHotplugRefresh(t *testing.T) {
	realEnv(t)
	const name, serial, margin = "ga-hot", "hot-ga-hot", 10 * time.Second
	realGuest(t, name, "QGA_DISK=1")
	p, m, rec, events := realPoller(t, name, Config{Tick: time.Second, Periods: Periods{Disks: time.Hour}, FailureThrottle: 3 * time.Second})
	u := waitForDiskData(t, p, m, name)
	boot := guest.DiskMapping{Serial: "qgadisk-" + name, Device: "/dev/vda"}
	if i, _ := p.Info(u); !slices.Equal(i.Disks.Mappings, []guest.DiskMapping{boot}) {
		t.Fatalf("disk mapping before the hotplug: %+v", i.Disks.Mappings)
	}
	hasFS := func(i *guest.Info, mp string) bool {
		return i != nil && i.Filesystems != nil && slices.ContainsFunc(i.Filesystems.List, func(f guest.Filesystem) bool { return f.Mountpoint == mp })
	}
	img := filepath.Join(t.TempDir(), "hot.img")
	run(t, nil, "mke2fs", "-q", "-t", "ext4", "-F", img, "8M")
	diskXML := fmt.Sprintf(`<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>`+
		`<target dev='vdb' bus='virtio'/><serial>%s</serial></disk>`, img, serial)
	dom, err := m.LookupDomain(u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dom.Free() }()

	// refreshed waits for the hotplug refresh after the device event at tEvent: both groups
	// asked once, at least HotplugRefreshDelay after the event, and cond true within the margin.
	refreshed := func(what string, tEvent time.Time, cond func(*guest.Info) bool) {
		t.Helper()
		NewWithT(t).Eventually(func() bool { i, _ := p.Info(u); return cond(i) }).
			WithTimeout(time.Until(tEvent.Add(HotplugRefreshDelay+margin))).WithPolling(100*time.Millisecond).
			Should(BeTrue(), func() string {
				i, _ := p.Info(u)
				return fmt.Sprintf("%s: disks %+v, filesystems %+v", what, i.Disks, i.Filesystems)
			})
		t.Logf("%s: shown %v after the device event", what, time.Since(tEvent).Round(100*time.Millisecond))
		for _, c := range []string{CmdDisks, CmdFSInfo} {
			calls := rec.since(u, c, tEvent)
			if len(calls) != 1 || calls[0].class != "" || calls[0].start.Before(tEvent.Add(HotplugRefreshDelay)) {
				t.Errorf("%s: %s calls since the event %+v, want one success from %v after it", what, c, calls, HotplugRefreshDelay)
			}
		}
	}
	deviceEvent := func(mark int, lc virt.Lifecycle) time.Time {
		t.Helper()
		var at time.Time
		NewWithT(t).Eventually(func() bool {
			var ok bool
			at, ok = events.find(mark, func(e virt.Event) bool { return e.Type == virt.EventDeviceChanged && e.Lifecycle == lc })
			return ok
		}).WithTimeout(30*time.Second).Should(BeTrue(), lc.String()+" event")
		return at
	}

	// --- plug: the guest-side script waits for the disk, records its serial, mounts it
	udev := guestShell(t, m, u, `for i in $(seq 300); do
  for b in /sys/block/vd*; do
    [ "$(cat $b/serial 2>/dev/null)" = `+serial+` ] || continue
    echo "E:ID_SERIAL=`+serial+`" >/run/udev/data/b$(cat $b/dev)
    mkdir -p /mnt/hot
    for j in $(seq 50); do mount -t ext4 /dev/${b##*/} /mnt/hot && exit 0; sleep 0.1; done
    exit 1
  done
  sleep 0.1
done
exit 2`)
	mark := events.len()
	if err := dom.AttachDeviceFlags(diskXML, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
		t.Fatalf("attach: %v", err)
	}
	tAdded := deviceEvent(mark, virt.LifecycleDeviceAdded)
	NewWithT(t).Eventually(func() []int { e, c := udev(); return []int{b2i(e), c} }).WithTimeout(HotplugRefreshDelay).WithPolling(200*time.Millisecond).
		Should(Equal([]int{1, 0}), "guest-side script (exited, code) before the refresh is due")
	hot := guest.DiskMapping{Serial: serial, Device: "/dev/vdb"}
	refreshed("plugged", tAdded, func(i *guest.Info) bool {
		return i != nil && i.Disks != nil && slices.Equal(i.Disks.Mappings, []guest.DiskMapping{hot, boot}) /* by serial */ && hasFS(i, "/mnt/hot") && hasFS(i, "/mnt/data")
	})
	i, _ := p.Info(u)
	if k := slices.IndexFunc(i.Filesystems.List, func(f guest.Filesystem) bool { return f.Mountpoint == "/mnt/hot" }); i.Filesystems.List[k].Type != "ext4" ||
		!slices.Equal(i.Filesystems.List[k].Disks, []string{"/dev/vdb"}) || !i.Filesystems.List[k].HasUsage {
		t.Errorf("hot-plugged filesystem: %+v", i.Filesystems.List[k])
	}

	// --- unplug: unmounted first (as a guest would before an orderly removal), then detached
	umount := guestShell(t, m, u, "umount /mnt/hot")
	NewWithT(t).Eventually(func() []int { e, c := umount(); return []int{b2i(e), c} }).WithTimeout(10*time.Second).WithPolling(200*time.Millisecond).
		Should(Equal([]int{1, 0}), "umount in the guest (exited, code)")
	mark = events.len()
	if err := dom.DetachDeviceFlags(diskXML, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
		t.Fatalf("detach: %v", err)
	}
	tRemoved := deviceEvent(mark, virt.LifecycleDeviceRemoved)
	refreshed("unplugged", tRemoved, func(i *guest.Info) bool {
		return i != nil && i.Disks != nil && slices.Equal(i.Disks.Mappings, []guest.DiskMapping{boot}) && !hasFS(i, "/mnt/hot") && hasFS(i, "/mnt/data")
	})
	// the hour-long period never came due: the first poll and the two hotplug refreshes only
	for _, c := range []string{CmdDisks, CmdFSInfo} {
		if n := rec.count(u, c); n != 3 {
			t.Errorf("%s sent %d times, want 3 (first poll, plug, unplug)", c, n)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
