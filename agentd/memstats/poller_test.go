package memstats

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// fakeHypervisor serves fixed statistics per domain and records period changes.
type fakeHypervisor struct {
	mu        sync.Mutex
	stats     map[string][]virt.MemoryStat
	readErr   map[string]error
	periodErr error
	periods   []string // "uuid=seconds"
	reads     int
}

func newFakeHypervisor() *fakeHypervisor {
	return &fakeHypervisor{stats: map[string][]virt.MemoryStat{}, readErr: map[string]error{}}
}

func (f *fakeHypervisor) MemoryStats(uuid string) ([]virt.MemoryStat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if err := f.readErr[uuid]; err != nil {
		return nil, err
	}
	return append([]virt.MemoryStat(nil), f.stats[uuid]...), nil
}

func (f *fakeHypervisor) SetMemoryStatsPeriod(uuid string, seconds int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.periodErr != nil {
		return f.periodErr
	}
	f.periods = append(f.periods, uuid+"="+itoa(seconds))
	return nil
}

func (f *fakeHypervisor) set(uuid string, s ...virt.MemoryStat) {
	f.mu.Lock()
	f.stats[uuid] = s
	f.mu.Unlock()
}

func (f *fakeHypervisor) failReads(uuid string, err error) {
	f.mu.Lock()
	f.readErr[uuid] = err
	f.mu.Unlock()
}

func (f *fakeHypervisor) periodCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.periods...)
}

func st(tag virt.MemoryStatTag, v uint64) virt.MemoryStat { return virt.MemoryStat{Tag: tag, Value: v} }

func itoa(i int) string { return strconv.Itoa(i) }

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// domains is a settable domain list.
type domains struct {
	mu sync.Mutex
	l  []virt.Domain
}

func (d *domains) list() []virt.Domain {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]virt.Domain(nil), d.l...)
}

func newPoller(t *testing.T, api Hypervisor, doms *domains, statsPeriod int) (*Poller, *[]string) {
	t.Helper()
	p, err := New(Config{API: api, Domains: doms.list, StatsPeriod: statsPeriod, Log: testr.New(t), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	changed := &[]string{}
	p.Subscribe(func(uuid string) { mu.Lock(); *changed = append(*changed, uuid); mu.Unlock() })
	return p, changed
}

const u1, u2, u3 = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"

func TestTranslate(t *testing.T) {
	m := Translate([]virt.MemoryStat{
		st(virt.MemStatAvailable, 2<<20), st(virt.MemStatUnused, 1<<20), st(virt.MemStatUsable, 3<<19),
		st(virt.MemStatDiskCaches, 100), st(virt.MemStatActualBalloon, 2<<20), st(virt.MemStatRSS, 300000),
		st(virt.MemStatSwapIn, 4), st(virt.MemStatSwapOut, 0), st(virt.MemStatMajorFault, 7), st(virt.MemStatMinorFault, 9),
		st(virt.MemStatLastUpdate, uint64(now.Unix())), st(virt.MemoryStatTag(99), 1), // unknown tags are ignored
	}, now)
	want := guest.Memory{TotalBytes: 2 << 30, UnusedBytes: 1 << 30, UsableBytes: 3 << 29, DiskCachesBytes: 102400,
		BalloonBytes: 2 << 30, HostRSSBytes: 300000 * 1024, HasCounters: true, SwapInBytes: 4096, MajorPageFaults: 7,
		MinorPageFaults: 9, StatsUpdated: now}
	if m == nil || *m != want {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	if m.HasGuestStats() != true {
		t.Error("total/usable are guest statistics")
	}
	host := Translate([]virt.MemoryStat{st(virt.MemStatActualBalloon, 1024), st(virt.MemStatRSS, 2048)}, now)
	if host == nil || host.HasGuestStats() || host.BalloonBytes != 1<<20 || host.HasCounters {
		t.Errorf("host-only figures: %+v", host)
	}
	if Translate(nil, now) != nil || Translate([]virt.MemoryStat{st(virt.MemoryStatTag(99), 1)}, now) != nil {
		t.Error("no known statistic must give no figures")
	}
}

// A guest controls the balloon statistics: KiB→bytes must saturate, never wrap, and everything
// must fit the API's int64; a last-update time far in the future is dropped.
func TestTranslateHostileValues(t *testing.T) {
	for _, v := range []uint64{math.MaxUint64, math.MaxUint64 / 1024, math.MaxInt64/1024 + 1, 1 << 63} {
		m := Translate([]virt.MemoryStat{st(virt.MemStatAvailable, v), st(virt.MemStatSwapOut, v),
			st(virt.MemStatMinorFault, v), st(virt.MemStatLastUpdate, v)}, now)
		if m.TotalBytes != math.MaxInt64 || m.SwapOutBytes != math.MaxInt64 || m.MinorPageFaults > math.MaxInt64 {
			t.Errorf("%d: got %+v, want saturation at MaxInt64", v, m)
		}
		if !m.StatsUpdated.IsZero() {
			t.Errorf("%d: a last update far in the future must be dropped, got %s", v, m.StatsUpdated)
		}
	}
	// The largest value that still converts exactly.
	if m := Translate([]virt.MemoryStat{st(virt.MemStatUsable, math.MaxInt64/1024)}, now); m.UsableBytes != (math.MaxInt64/1024)*1024 {
		t.Errorf("exact conversion at the limit: %d", m.UsableBytes)
	}
}

func TestValidateStatsPeriod(t *testing.T) {
	for _, ok := range []int{0, 1, 10, MaxStatsPeriod} {
		if err := ValidateStatsPeriod(ok); err != nil {
			t.Errorf("%d: %v", ok, err)
		}
	}
	for _, bad := range []int{-1, MaxStatsPeriod + 1, math.MinInt} {
		if ValidateStatsPeriod(bad) == nil {
			t.Errorf("%d must be refused", bad)
		}
	}
	if _, err := New(Config{API: newFakeHypervisor(), Domains: (&domains{}).list, StatsPeriod: -5}); err == nil {
		t.Error("New must refuse a negative period")
	}
}

func TestPollerEnablesThePeriodOncePerProcess(t *testing.T) {
	api := newFakeHypervisor()
	doms := &domains{l: []virt.Domain{
		{UUID: u1, Name: "off", State: virt.StateRunning, Balloon: true},                       // period off: enable
		{UUID: u2, Name: "on", State: virt.StateRunning, Balloon: true, BalloonStatsPeriod: 5}, // leave alone
		{UUID: u3, Name: "no-balloon", State: virt.StateRunning, Balloon: false},               // nothing to enable
		{UUID: "stopped", Name: "stopped", State: virt.StateShutOff, Balloon: true},            // not running
	}}
	p, _ := newPoller(t, api, doms, 10)
	p.Poll(context.Background())
	p.Poll(context.Background())
	if got := api.periodCalls(); len(got) != 1 || got[0] != u1+"="+itoa(10) {
		t.Fatalf("period calls %v, want one for %s", got, u1)
	}
	// The domain was restarted: the live setting is gone, set it again.
	p.HandleEvent(virt.Event{Type: virt.EventDomainUpdated, Domain: doms.l[0], Lifecycle: virt.LifecycleStarted})
	p.Poll(context.Background())
	if got := api.periodCalls(); len(got) != 2 {
		t.Fatalf("period calls after a restart %v, want a second one", got)
	}

	// 0 never changes a domain.
	api2 := newFakeHypervisor()
	p2, _ := newPoller(t, api2, doms, 0)
	p2.Poll(context.Background())
	if got := api2.periodCalls(); len(got) != 0 {
		t.Fatalf("statsPeriod 0 changed domains: %v", got)
	}
}

func TestPollerPeriodFailureIsNotRetriedEveryPoll(t *testing.T) {
	api := newFakeHypervisor()
	api.periodErr = errors.New("operation not supported")
	api.set(u1, virt.MemoryStat{Tag: virt.MemStatActualBalloon, Value: 1024})
	doms := &domains{l: []virt.Domain{{UUID: u1, State: virt.StateRunning, Balloon: true}}}
	p, _ := newPoller(t, api, doms, 10)
	p.Poll(context.Background())
	api.periodErr = nil
	p.Poll(context.Background())
	if got := api.periodCalls(); len(got) != 0 {
		t.Fatalf("a failed period change must not be retried within one process: %v", got)
	}
	if m, fresh := p.Memory(u1); m == nil || !fresh || m.BalloonBytes != 1<<20 {
		t.Errorf("host-side figures must still be read: %+v fresh=%v", m, fresh)
	}
}

func TestPollerKeepsLastFiguresOnErrorAndForgetsStoppedDomains(t *testing.T) {
	api := newFakeHypervisor()
	api.set(u1, virt.MemoryStat{Tag: virt.MemStatAvailable, Value: 1 << 20}, virt.MemoryStat{Tag: virt.MemStatUsable, Value: 1 << 19})
	d := virt.Domain{UUID: u1, State: virt.StateRunning, Balloon: true, BalloonStatsPeriod: 5}
	doms := &domains{l: []virt.Domain{d}}
	p, changed := newPoller(t, api, doms, 0)

	p.Poll(context.Background())
	m, fresh := p.Memory(u1)
	if m == nil || !fresh || m.TotalBytes != 1<<30 || len(*changed) != 1 {
		t.Fatalf("first read: %+v fresh=%v changes=%v", m, fresh, *changed)
	}
	p.Poll(context.Background()) // same figures: no change notification
	if len(*changed) != 1 {
		t.Fatalf("unchanged figures notified: %v", *changed)
	}
	m.TotalBytes = 1 // a copy: the poller's figures are not shared
	if m2, _ := p.Memory(u1); m2.TotalBytes != 1<<30 {
		t.Fatal("Memory must return a copy")
	}

	api.failReads(u1, errors.New("connection closed"))
	p.Poll(context.Background())
	m, fresh = p.Memory(u1)
	if m == nil || fresh || m.TotalBytes != 1<<30 || len(*changed) != 2 {
		t.Fatalf("after a failed read: %+v fresh=%v changes=%v (want last figures, not fresh, one change)", m, fresh, *changed)
	}
	api.failReads(u1, nil)
	p.Poll(context.Background())
	if _, fresh = p.Memory(u1); !fresh || len(*changed) != 3 {
		t.Fatalf("recovery: fresh=%v changes=%v", fresh, *changed)
	}

	// Paused: not read, figures kept.
	reads := api.reads
	doms.l[0].State = virt.StatePaused
	p.Poll(context.Background())
	if api.reads != reads {
		t.Error("a paused domain must not be read")
	}
	if m, _ := p.Memory(u1); m == nil {
		t.Error("a paused domain keeps its figures")
	}
	// Stopped: forgotten, and the change is announced.
	d.State = virt.StateShutOff
	p.HandleEvent(virt.Event{Type: virt.EventDomainUpdated, Domain: d, Lifecycle: virt.LifecycleStopped})
	if m, _ := p.Memory(u1); m != nil || len(*changed) != 4 {
		t.Errorf("a stopped domain must be forgotten: %+v changes=%v", m, *changed)
	}
	// A domain no longer listed is forgotten by the next poll.
	doms.l[0].State = virt.StateRunning
	p.Poll(context.Background())
	doms.l = nil
	p.Poll(context.Background())
	if m, _ := p.Memory(u1); m != nil {
		t.Error("a domain gone from the listing must be forgotten")
	}
}

// Without a statistics period the guest-side figures are the balloon driver's boot-time
// snapshot: only the host-side figures are reported until the period is enabled.
func TestPollerDropsGuestFiguresWithoutPeriod(t *testing.T) {
	api := newFakeHypervisor()
	api.set(u1, st(virt.MemStatAvailable, 1<<20), st(virt.MemStatUsable, 1<<19), st(virt.MemStatActualBalloon, 1<<20),
		st(virt.MemStatRSS, 1000))
	doms := &domains{l: []virt.Domain{{UUID: u1, State: virt.StateRunning, Balloon: true}}}
	p, _ := newPoller(t, api, doms, 0)
	p.Poll(context.Background())
	if m, _ := p.Memory(u1); m == nil || *m != (guest.Memory{BalloonBytes: 1 << 30, HostRSSBytes: 1000 * 1024}) {
		t.Fatalf("period off: got %+v, want the host-side figures only", m)
	}
	enabling, _ := newPoller(t, api, doms, 10)
	enabling.Poll(context.Background())
	if m, _ := enabling.Memory(u1); m == nil || m.TotalBytes != 1<<30 || m.UsableBytes != 1<<29 {
		t.Fatalf("period enabled: got %+v, want the guest figures", m)
	}
}
