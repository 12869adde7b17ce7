package qga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// fakeClock is a manually advanced Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeGuest scripts one guest's agent.
type fakeGuest struct {
	caps    []CommandInfo
	version string
	errs    map[string]error // per command
	hang    chan struct{}    // when non-nil, every call blocks until closed
	os      *OSInfo
	users   []UserInfo
	ifs     []NetInterface
	fs      []FSInfo
	disks   []DiskInfo
	vcpus   []VCPU
	// vcpuSetIgnored makes guest-set-vcpus report success without changing anything.
	vcpuSetIgnored bool
	devices        string
	hostname       string
	freeze         string // guest-fsfreeze-status answer ("" = "thawed")
	// freezeNothing: the guest has no filesystem a freeze can freeze, so guest-fsfreeze-freeze
	// succeeds (0 frozen) and leaves the agent thawed, as qemu-ga 7.2 does. Otherwise a freeze
	// sets freeze to "frozen" and a thaw clears it.
	freezeNothing bool
	stats         map[string]string // raw replies of the stats commands
}

// fakeAPI is an in-memory DomainAPI recording every call.
type fakeAPI struct {
	mu     sync.Mutex
	guests map[string]*fakeGuest
	calls  map[string]map[string]int // uuid → cmd → count
	active map[string]int            // uuid → concurrent calls (must never exceed 1)
	maxPar int
	// vcpuSets records every SetVCPUs call: "<uuid> <cpulist> online=<bool>".
	vcpuSets []string
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{guests: map[string]*fakeGuest{}, calls: map[string]map[string]int{}, active: map[string]int{}}
}

func allCommands(disabled ...string) []CommandInfo {
	var out []CommandInfo
	for _, c := range []string{CmdInfo, CmdPing, CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices,
		CmdVCPUs, CmdFSInfo, CmdDisks, CmdShutdown, CmdFSFreeze, CmdFSFreezeList, CmdFSThaw, CmdFSFreezeState, CmdSetTime, CmdSetVCPUs} {
		en := true
		for _, d := range disabled {
			if d == c {
				en = false
			}
		}
		out = append(out, CommandInfo{Name: c, Enabled: en})
	}
	return out
}

func i(v int) *int         { return &v }
func u64(v uint64) *uint64 { return &v }

func defaultGuest(name string) *fakeGuest {
	return &fakeGuest{
		caps: allCommands(), version: "7.2.22", errs: map[string]error{},
		os:       &OSInfo{ID: "debian", Name: "Debian GNU/Linux", KernelRelease: "6.1.0-56-amd64", Machine: "x86_64", VersionID: "12"},
		hostname: name,
		ifs: []NetInterface{{Name: "lo", HardwareAddress: "00:00:00:00:00:00", IPAddresses: []IPAddress{{Type: "ipv4", Address: "127.0.0.1", Prefix: i(8)}}},
			{Name: "eth0", HardwareAddress: "52:54:00:AA:BB:CC", IPAddresses: []IPAddress{{Type: "ipv4", Address: "10.0.2.15", Prefix: i(24)}}}},
		fs:      []FSInfo{{Name: "vda", Mountpoint: "/mnt/data", Type: "ext4", TotalBytes: u64(100), UsedBytes: u64(10), Disk: []FSDisk{{Serial: "s1", Dev: "/dev/vda1"}}}},
		disks:   []DiskInfo{{Name: "/dev/vda", Address: &DiskAddress{Serial: "s1"}}},
		vcpus:   []VCPU{{LogicalID: 0, Online: true}, {LogicalID: 1, Online: true}},
		devices: `[{"driver-name":"viostor","driver-version":"1.0","driver-date":1600000000000000000,"id":{"type":"pci","vendor-id":6900,"device-id":4097}}]`,
	}
}

func (f *fakeAPI) add(uuid string, g *fakeGuest) {
	f.mu.Lock()
	f.guests[uuid] = g
	f.mu.Unlock()
}

func (f *fakeAPI) count(uuid, cmd string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[uuid][cmd]
}

func (f *fakeAPI) total(uuid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls[uuid] {
		n += c
	}
	return n
}

// enter records a call and returns the guest; it blocks while the guest hangs.
func (f *fakeAPI) enter(uuid, cmd string) (*fakeGuest, func(), error) {
	f.mu.Lock()
	g := f.guests[uuid]
	if f.calls[uuid] == nil {
		f.calls[uuid] = map[string]int{}
	}
	f.calls[uuid][cmd]++
	f.active[uuid]++
	if f.active[uuid] > f.maxPar {
		f.maxPar = f.active[uuid]
	}
	f.mu.Unlock()
	done := func() {
		f.mu.Lock()
		f.active[uuid]--
		f.mu.Unlock()
	}
	if g == nil {
		return nil, done, &Error{Class: ErrDomainNotRunning, Command: cmd, Err: errors.New("no such domain")}
	}
	if g.hang != nil {
		<-g.hang
	}
	f.mu.Lock()
	err := g.errs[cmd]
	f.mu.Unlock()
	return g, done, err
}

func (f *fakeAPI) Raw(_ context.Context, uuid, cmd string, _ time.Duration) (json.RawMessage, error) {
	g, done, err := f.enter(uuid, cmd)
	defer done()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch cmd {
	case CmdInfo:
		return json.Marshal(AgentInfo{Version: g.version, SupportedCommands: g.caps})
	case CmdDevices:
		return json.RawMessage(g.devices), nil
	case CmdPing:
		return json.RawMessage(`{}`), nil
	case CmdLoad, CmdCPUStats, CmdDiskStats:
		if r, ok := g.stats[cmd]; ok {
			return json.RawMessage(r), nil
		}
	case CmdFSFreezeState:
		if g.freeze == "" {
			return json.RawMessage(`"thawed"`), nil
		}
		return json.Marshal(g.freeze)
	}
	return nil, &Error{Class: ErrUnsupported, Command: cmd, Err: errors.New("CommandNotFound")}
}

func (f *fakeAPI) GuestInfo(_ context.Context, uuid string, t InfoType, _ time.Duration) (*GuestInfoReply, error) {
	g, done, err := f.enter(uuid, t.Command())
	defer done()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &GuestInfoReply{}
	switch t {
	case InfoUsers:
		r.Users = append([]UserInfo{}, g.users...)
	case InfoOS:
		if g.os != nil {
			o := *g.os
			r.OS = &o
		}
	case InfoTimezone:
		r.Timezone = &TimezoneInfo{Zone: "UTC", Offset: i(0)}
	case InfoHostname:
		r.Hostname = &HostName{HostName: g.hostname}
	case InfoFilesystem:
		r.FS = g.fs
	case InfoDisks:
		r.Disks = g.disks
	default:
		return nil, fmt.Errorf("fake: bad type %d", t)
	}
	return r, nil
}

func (f *fakeAPI) Interfaces(_ context.Context, uuid string, _ time.Duration) ([]NetInterface, error) {
	g, done, err := f.enter(uuid, CmdInterfaces)
	defer done()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]NetInterface{}, g.ifs...), nil
}

func (f *fakeAPI) VCPUs(_ context.Context, uuid string, _ time.Duration) ([]VCPU, error) {
	g, done, err := f.enter(uuid, CmdVCPUs)
	defer done()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]VCPU(nil), g.vcpus...), nil
}

// SetVCPUs changes the guest's vCPUs like libvirt's virDomainSetGuestVcpus: every id must exist
// and, to go offline, be offlinable; otherwise nothing changes.
func (f *fakeAPI) SetVCPUs(_ context.Context, uuid string, ids []int, online bool, _ time.Duration) error {
	g, done, err := f.enter(uuid, CmdSetVCPUs)
	defer done()
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vcpuSets = append(f.vcpuSets, fmt.Sprintf("%s %s online=%v", uuid, FormatCPUList(ids), online))
	next := append([]VCPU(nil), g.vcpus...)
	for _, id := range ids {
		k := slices.IndexFunc(next, func(v VCPU) bool { return v.LogicalID == id })
		if k < 0 {
			return &Error{Class: ErrAgentError, Command: CmdSetVCPUs, Err: fmt.Errorf("requested vcpu '%d' is not present", id)}
		}
		if !online && !next[k].CanOffline {
			return &Error{Class: ErrAgentError, Command: CmdSetVCPUs, Err: fmt.Errorf("vCPU '%d' is not offlinable", id)}
		}
		next[k].Online = online
	}
	if !g.vcpuSetIgnored {
		g.vcpus = next
	}
	return nil
}

func (f *fakeAPI) simple(uuid, cmd string) error {
	_, done, err := f.enter(uuid, cmd)
	done()
	return err
}

func (f *fakeAPI) Shutdown(_ context.Context, uuid string, _ ShutdownMode, _ time.Duration) error {
	return f.simple(uuid, CmdShutdown)
}
func (f *fakeAPI) Reboot(_ context.Context, uuid string, _ time.Duration) error {
	return f.simple(uuid, "reboot")
}
func (f *fakeAPI) Suspend(_ context.Context, uuid, cmd string, _ time.Duration) error {
	return f.simple(uuid, cmd)
}
func (f *fakeAPI) FSFreeze(_ context.Context, uuid string, _ []string, _ time.Duration) error {
	g, done, err := f.enter(uuid, CmdFSFreeze)
	defer done()
	if err != nil {
		return err
	}
	f.mu.Lock()
	if !g.freezeNothing {
		g.freeze = "frozen"
	}
	f.mu.Unlock()
	return nil
}
func (f *fakeAPI) FSThaw(_ context.Context, uuid string, _ []string, _ time.Duration) error {
	g, done, err := f.enter(uuid, CmdFSThaw)
	defer done()
	if err != nil {
		return err
	}
	f.mu.Lock()
	g.freeze = ""
	f.mu.Unlock()
	return nil
}
func (f *fakeAPI) SetTime(_ context.Context, uuid string, _ time.Time, _ time.Duration) error {
	return f.simple(uuid, CmdSetTime)
}

// domainSet is a mutable Config.Domains source.
type domainSet struct {
	mu   sync.Mutex
	doms map[string]virt.Domain
}

func (s *domainSet) set(d virt.Domain) {
	s.mu.Lock()
	if s.doms == nil {
		s.doms = map[string]virt.Domain{}
	}
	s.doms[d.UUID] = d
	s.mu.Unlock()
}

func (s *domainSet) del(uuid string) {
	s.mu.Lock()
	delete(s.doms, uuid)
	s.mu.Unlock()
}

func (s *domainSet) list() []virt.Domain {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]virt.Domain, 0, len(s.doms))
	for _, d := range s.doms {
		out = append(out, d)
	}
	return out
}

func running(uuid string) virt.Domain {
	return virt.Domain{UUID: uuid, Name: "vm-" + uuid, State: virt.StateRunning, HasQGAChannel: true, QGAChannel: guest.ChannelConnected}
}

// idle reports whether no domain run is queued or in flight.
func (p *QemuGuestAgentPoller) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.doms {
		if d.queued || len(d.lock) > 0 {
			return false
		}
	}
	return true
}
