package qga

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// statsGuest enables the three stats commands and answers them.
func statsGuest(name string) *fakeGuest {
	g := defaultGuest(name)
	g.caps = append(g.caps, CommandInfo{Name: CmdLoad, Enabled: true}, CommandInfo{Name: CmdCPUStats, Enabled: true},
		CommandInfo{Name: CmdDiskStats, Enabled: true})
	g.stats = map[string]string{CmdLoad: `{"load1":0.5,"load5":0.25,"load15":0.125}`, CmdCPUStats: cpuStatsReply, CmdDiskStats: diskStatsReply}
	return g
}

var statsCmds = []string{CmdLoad, CmdCPUStats, CmdDiskStats}

func TestStatsNotEnabledAreNeverSent(t *testing.T) {
	h := newHarness(t, nil)
	g := statsGuest("a")
	g.caps = allCommands() // qemu-ga without (or with disabled) stats commands
	g.caps = append(g.caps, CommandInfo{Name: CmdLoad, Enabled: false})
	h.api.add("a", g)
	h.doms.set(running("a"))
	for range 5 {
		h.step(t, time.Minute)
	}
	for _, c := range statsCmds {
		if n := h.api.count("a", c); n != 0 {
			t.Errorf("%s sent %d times to an agent that does not enable it", c, n)
		}
	}
	if s := h.p.Stats("a"); s != nil {
		t.Errorf("stats %+v", s)
	}
	if st, _ := h.p.State("a"); slices.ContainsFunc(st.UnsupportedCommands, func(c string) bool { return slices.Contains(statsCmds, c) }) {
		t.Errorf("metrics-only commands must stay out of the status: %v", st.UnsupportedCommands)
	}
}

func TestStatsPolledAtTheirPeriodWithoutChangeNotifications(t *testing.T) {
	h := newHarness(t, nil)
	h.api.add("a", statsGuest("a"))
	h.doms.set(running("a"))
	h.step(t, 0)
	for _, c := range statsCmds {
		if n := h.api.count("a", c); n != 1 {
			t.Errorf("first run: %s sent %d times", c, n)
		}
	}
	s := h.p.Stats("a")
	if s == nil || s.Load == nil || *s.Load != (guest.Load{Load1: 0.5, Load5: 0.25, Load15: 0.125}) {
		t.Fatalf("stats %+v", s)
	}
	if s.CPU == nil || s.CPU.Seconds[guest.CPUUser] != 40 || len(s.Disks) != 2 || s.Disks[0].Name != "vda" {
		t.Fatalf("stats cpu %+v disks %+v", s.CPU, s.Disks)
	}
	info, _ := h.p.Info("a")
	before := h.changeCount("a")

	// new figures every minute; nothing else changes: no notification, Info untouched
	h.api.mu.Lock()
	h.api.guests["a"].stats[CmdLoad] = `{"load1":3,"load5":2,"load15":1}`
	h.api.mu.Unlock()
	h.step(t, 30*time.Second)
	if h.api.count("a", CmdLoad) != 1 {
		t.Errorf("stats polled before their period")
	}
	h.step(t, 30*time.Second)
	for _, c := range statsCmds {
		if n := h.api.count("a", c); n != 2 {
			t.Errorf("t=60s: %s sent %d times, want 2", c, n)
		}
	}
	if s := h.p.Stats("a"); s == nil || s.Load.Load1 != 3 {
		t.Errorf("new load not available: %+v", s)
	}
	if n := h.changeCount("a"); n != before {
		t.Errorf("a stats poll notified a change (%d → %d)", before, n)
	}
	if after, _ := h.p.Info("a"); !reflect.DeepEqual(after, info) {
		t.Errorf("a stats poll changed Info")
	}

	// the accessor serves copies; a stopped domain has none
	s = h.p.Stats("a")
	s.Disks[0].Name = "mutated"
	if h.p.Stats("a").Disks[0].Name != "vda" {
		t.Error("Stats returned shared data")
	}
	d := running("a")
	d.State = virt.StatePaused
	h.doms.set(d)
	h.step(t, 0)
	if s := h.p.Stats("a"); s != nil {
		t.Errorf("paused domain: stats %+v", s)
	}
}

func TestStatsUnsupportedNotRetriedAndDisabled(t *testing.T) {
	h := newHarness(t, nil)
	g := statsGuest("a")
	g.errs[CmdLoad] = &Error{Class: ErrUnsupported, Command: CmdLoad, Err: errors.New("CommandNotFound")}
	g.errs[CmdCPUStats] = &Error{Class: ErrAgentError, Command: CmdCPUStats, Err: errors.New("boom")}
	h.api.add("a", g)
	h.doms.set(running("a"))
	h.step(t, 0)
	before := h.changeCount("a")
	for range 3 {
		h.step(t, time.Minute)
	}
	if n := h.api.count("a", CmdLoad); n != 1 {
		t.Errorf("unsupported %s sent %d times, want 1", CmdLoad, n)
	}
	if n := h.api.count("a", CmdCPUStats); n != 4 {
		t.Errorf("failing %s sent %d times, want 4 (at its period)", CmdCPUStats, n)
	}
	st, _ := h.p.State("a")
	if !st.Responsive || (st.LastError != nil && slices.Contains(statsCmds, st.LastError.Command)) || len(st.UnsupportedCommands) != 0 {
		t.Errorf("stats failures leaked into State: %+v", st)
	}
	if n := h.changeCount("a"); n != before {
		t.Errorf("stats failures notified changes (%d → %d)", before, n)
	}
	s := h.p.Stats("a")
	if s == nil || s.Load != nil || s.CPU != nil || len(s.Disks) != 2 {
		t.Errorf("stats %+v", s)
	}

	// poll.stats 0 → Periods.Stats negative: never sent
	h2 := newHarness(t, func(c *Config) { c.Periods.Stats = StatsPeriod(0) })
	h2.api.add("b", statsGuest("b"))
	h2.doms.set(running("b"))
	h2.step(t, 0)
	h2.step(t, time.Hour)
	for _, c := range statsCmds {
		if n := h2.api.count("b", c); n != 0 {
			t.Errorf("disabled: %s sent %d times", c, n)
		}
	}
	if h2.api.count("b", CmdUsers) == 0 || h2.p.Stats("b") != nil {
		t.Error("disabled stats: other polls must go on, no stats")
	}
}

func TestHotplugRefreshesFilesystemsAndDisksOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.api.add("a", defaultGuest("a"))
	h.doms.set(running("a"))
	h.step(t, 0)
	fs, disks := h.api.count("a", CmdFSInfo), h.api.count("a", CmdDisks)
	h.step(t, 20*time.Second)

	ev := virt.Event{Type: virt.EventDeviceChanged, Domain: running("a"), Lifecycle: virt.LifecycleDeviceAdded, Device: "virtio-disk1"}
	h.p.HandleEvent(ev)
	h.api.mu.Lock()
	h.api.guests["a"].disks = append(h.api.guests["a"].disks, DiskInfo{Name: "/dev/vdb", Address: &DiskAddress{Serial: "s2"}})
	h.api.mu.Unlock()
	h.step(t, 5*time.Second) // hotplug + 5 s: the guest may not see the disk yet
	if h.api.count("a", CmdFSInfo) != fs || h.api.count("a", CmdDisks) != disks {
		t.Fatalf("refreshed before the delay")
	}
	h.step(t, 5*time.Second) // hotplug + 10 s
	if h.api.count("a", CmdFSInfo) != fs+1 || h.api.count("a", CmdDisks) != disks+1 {
		t.Fatalf("no refresh at hotplug + 10 s: fsinfo %d, disks %d", h.api.count("a", CmdFSInfo), h.api.count("a", CmdDisks))
	}
	if info, _ := h.p.Info("a"); len(info.Disks.Mappings) != 2 {
		t.Errorf("new disk not mapped: %+v", info.Disks.Mappings)
	}
	if h.api.count("a", CmdOSInfo) != 1 {
		t.Error("a hotplug must refresh only filesystems and disks")
	}
	h.step(t, 5*time.Second)
	h.step(t, 60*time.Second)
	if h.api.count("a", CmdFSInfo) != fs+1 {
		t.Errorf("the hotplug refresh must be one-off: fsinfo %d", h.api.count("a", CmdFSInfo))
	}
	// the normal period goes on from the refresh: t=35 + 300 s
	h.step(t, 300*time.Second)
	if h.api.count("a", CmdFSInfo) != fs+2 {
		t.Errorf("periodic refresh lost: fsinfo %d", h.api.count("a", CmdFSInfo))
	}
	// an unknown domain's device event is ignored
	h.p.HandleEvent(virt.Event{Type: virt.EventDeviceChanged, Domain: running("zz"), Lifecycle: virt.LifecycleDeviceRemoved})
	if _, ok := h.p.Info("zz"); ok {
		t.Error("device event created a domain")
	}
}

// A restarted guest (new agent process) starts from scratch: old figures are dropped at once and
// a command the previous agent rejected is tried again.
func TestStatsResetOnAgentRestart(t *testing.T) {
	h := newHarness(t, nil)
	g := statsGuest("a")
	g.errs[CmdLoad] = &Error{Class: ErrUnsupported, Command: CmdLoad, Err: errors.New("CommandNotFound")}
	h.api.add("a", g)
	h.doms.set(running("a"))
	h.step(t, 0)
	if s := h.p.Stats("a"); s == nil || s.CPU == nil || s.Load != nil {
		t.Fatalf("stats %+v", s)
	}
	h.api.mu.Lock()
	delete(g.errs, CmdLoad)
	h.api.mu.Unlock()
	h.p.HandleEvent(virt.Event{Type: virt.EventDomainUpdated, Domain: running("a"), Lifecycle: virt.LifecycleRebooted})
	if s := h.p.Stats("a"); s != nil {
		t.Errorf("figures of the previous boot kept: %+v", s)
	}
	h.step(t, 0)           // the restart's capability check
	h.step(t, time.Minute) // stats at their period, like every group after a restart
	if n := h.api.count("a", CmdLoad); n != 2 {
		t.Errorf("%s sent %d times, want a second chance after the restart", CmdLoad, n)
	}
	if s := h.p.Stats("a"); s == nil || s.Load == nil || s.CPU == nil {
		t.Errorf("stats after restart %+v", s)
	}
}

// Hotplugs in a row: one refresh, 10 s after the last one.
func TestHotplugBurstRefreshesOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.api.add("a", defaultGuest("a"))
	h.doms.set(running("a"))
	h.step(t, 0)
	fs := h.api.count("a", CmdFSInfo)
	for range 3 {
		h.p.HandleEvent(virt.Event{Type: virt.EventDeviceChanged, Domain: running("a"), Lifecycle: virt.LifecycleDeviceAdded})
		h.step(t, 5*time.Second)
	}
	if n := h.api.count("a", CmdFSInfo); n != fs {
		t.Fatalf("refreshed %d times during the burst", n-fs)
	}
	h.step(t, 5*time.Second)
	h.step(t, 5*time.Second)
	if n := h.api.count("a", CmdFSInfo); n != fs+1 {
		t.Errorf("refreshed %d times after the burst, want 1", n-fs)
	}
}
