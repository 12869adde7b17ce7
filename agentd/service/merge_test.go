package service

import (
	"reflect"
	"testing"

	"guestagent.io/operator/agentd/guest"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

func q(info *guest.Info, responsive bool) sourceData {
	return sourceData{source: gav1.SourceQemu, info: info, responsive: responsive}
}
func o(info *guest.Info, responsive bool) sourceData {
	return sourceData{source: gav1.SourceOvirt, info: info, responsive: responsive}
}

func hv(mem *guest.Memory, responsive bool) sourceData {
	d := sourceData{source: gav1.SourceLibvirt, responsive: responsive}
	if mem != nil {
		d.info = &guest.Info{Memory: mem}
	}
	return d
}

var noHV = hv(nil, false)

func TestMergePrecedence(t *testing.T) {
	qi := &guest.Info{
		Hostname: &guest.Hostname{Name: "qga-host"},
		OS:       &guest.OS{Type: guest.OSTypeLinux, KernelRelease: "6.1.0"},
		Users:    &guest.Users{}, // QGA positively reports nobody
		Disks:    &guest.Disks{Mappings: []guest.DiskMapping{{Serial: "S1", Device: "/dev/vda"}}},
	}
	oi := &guest.Info{
		Hostname: &guest.Hostname{Name: "oga-host", FQDN: "oga-host.example"},
		Users:    &guest.Users{List: []guest.User{{Name: "frodo"}}},
		Session:  &guest.Session{State: guest.SessionLocked},
		Memory:   &guest.Memory{TotalBytes: 100},
		Disks: &guest.Disks{Mappings: []guest.DiskMapping{
			{Serial: "S1", Device: "/dev/sda"}, {Serial: "S2", Device: "/dev/sdb"}}},
		Applications: &guest.Applications{List: []string{
			"QEMU guest agent", "qemu-guest-agent-7.0", "kernel-5.0", "my-kernel-x", "bash-5.2", "bash-5.2", ""}},
	}
	m := merge(q(qi, true), o(oi, true), noHV, "7.2.22")

	if m.info.Hostname.Name != "qga-host" || m.sources[guest.GroupHostname] != gav1.SourceQemu {
		t.Errorf("hostname: QGA must win, got %+v from %s", m.info.Hostname, m.sources[guest.GroupHostname])
	}
	if len(m.info.Users.List) != 0 || m.sources[guest.GroupUsers] != gav1.SourceQemu {
		t.Errorf("users: QGA's empty list must win, got %+v", m.info.Users)
	}
	if m.info.Session.State != guest.SessionLocked || m.sources[guest.GroupSession] != gav1.SourceOvirt {
		t.Errorf("session is OGA-only")
	}
	if m.info.Memory == nil || m.sources[guest.GroupMemory] != gav1.SourceOvirt {
		t.Errorf("memory comes from OGA when libvirt has no figures")
	}
	wantDisks := []guest.DiskMapping{{Serial: "S1", Device: "/dev/vda"}, {Serial: "S2", Device: "/dev/sdb"}}
	if !reflect.DeepEqual(m.info.Disks.Mappings, wantDisks) {
		t.Errorf("disks: got %+v, want %+v (QGA wins per serial)", m.info.Disks.Mappings, wantDisks)
	}
	wantApps := []string{"kernel-6.1.0", "qemu-guest-agent-7.2.22", "my-kernel-x", "bash-5.2"}
	if !reflect.DeepEqual(m.info.Applications.List, wantApps) {
		t.Errorf("apps: got %q, want %q", m.info.Applications.List, wantApps)
	}
	if len(m.stale) != 0 {
		t.Errorf("nothing is stale while both answer: %v", m.stale)
	}
	// Inputs untouched.
	if oi.Hostname.Name != "oga-host" || len(oi.Applications.List) != 7 {
		t.Error("merge modified its input")
	}
}

func TestMergeFallsBackToResponsiveSourceAndMarksStale(t *testing.T) {
	qi := &guest.Info{Hostname: &guest.Hostname{Name: "old-qga"}, OS: &guest.OS{Name: "Debian"}}
	oi := &guest.Info{Hostname: &guest.Hostname{Name: "fresh-oga"}}
	m := merge(q(qi, false), o(oi, true), noHV, "")
	if m.info.Hostname.Name != "fresh-oga" || m.stale[guest.GroupHostname] {
		t.Errorf("a responsive OGA must stand in for a silent QGA: %+v stale=%v", m.info.Hostname, m.stale)
	}
	if m.info.OS == nil || m.info.OS.Name != "Debian" || !m.stale[guest.GroupOS] {
		t.Errorf("QGA-only data must be kept and marked stale, got %+v stale=%v", m.info.OS, m.stale)
	}
	// Nobody answers: last known values stay.
	m = merge(q(qi, false), o(nil, false), noHV, "")
	if m.info.Hostname.Name != "old-qga" || !m.stale[guest.GroupHostname] {
		t.Errorf("data must not be blanked when agents go away: %+v", m.info.Hostname)
	}
}

func TestMergeOGAOnlyAndQGAOnlyHaveSameShape(t *testing.T) {
	data := &guest.Info{
		Hostname: &guest.Hostname{Name: "h"},
		OS:       &guest.OS{Type: guest.OSTypeLinux, Name: "Debian", KernelRelease: "6.1"},
		Network:  &guest.Network{Interfaces: []guest.Interface{{Name: "eth0", IPv4: []string{"10.0.0.2"}}}},
	}
	onlyQ := merge(q(data, true), o(nil, false), noHV, "")
	onlyO := merge(q(nil, false), o(data, true), noHV, "")
	for _, g := range []guest.Group{guest.GroupHostname, guest.GroupOS, guest.GroupNetwork} {
		if !onlyQ.info.Has(g) || !onlyO.info.Has(g) {
			t.Errorf("group %s missing", g)
		}
	}
	if !reflect.DeepEqual(onlyQ.info.Network, onlyO.info.Network) || !reflect.DeepEqual(onlyQ.info.OS, onlyO.info.OS) {
		t.Error("the same data must merge to the same unified fields whichever agent supplied it")
	}
	if onlyQ.info.Applications == nil || onlyO.info.Applications != nil {
		t.Error("only QGA adds synthetic kernel entry; OGA without apps adds none")
	}
	if m := merge(q(nil, false), o(nil, false), noHV, ""); m.info.Has(guest.GroupHostname) || len(m.sources) != 0 {
		t.Error("no data in, no data out")
	}
}

func TestMergeMemoryPrecedence(t *testing.T) {
	ogaMem := &guest.Memory{TotalBytes: 1000, FreeBytes: 400, BuffersBytes: 10}
	full := &guest.Memory{TotalBytes: 2000, UsableBytes: 900, UnusedBytes: 500, BalloonBytes: 2048, HostRSSBytes: 300}
	hostOnly := &guest.Memory{BalloonBytes: 2048, HostRSSBytes: 300}
	oi := &guest.Info{Memory: ogaMem}
	ogaAndHost := &guest.Memory{TotalBytes: 1000, FreeBytes: 400, BuffersBytes: 10, BalloonBytes: 2048, HostRSSBytes: 300}
	for _, c := range []struct {
		name      string
		oga, hv   sourceData
		want      *guest.Memory
		wantSrc   gav1.DataSource
		wantStale bool
	}{
		{"balloon statistics win over OGA", o(oi, true), hv(full, true), full, gav1.SourceLibvirt, false},
		{"OGA wins over host-only figures, which join it", o(oi, true), hv(hostOnly, true), ogaAndHost, gav1.SourceOvirt, false},
		{"host-only figures when nothing else", o(nil, false), hv(hostOnly, true), hostOnly, gav1.SourceLibvirt, false},
		{"a responsive OGA stands in for unreadable statistics (no stale host figures)", o(oi, true), hv(full, false), ogaMem, gav1.SourceOvirt, false},
		{"both silent: statistics kept, stale", o(oi, false), hv(full, false), full, gav1.SourceLibvirt, true},
		{"only OGA, silent: kept, stale", o(oi, false), noHV, ogaMem, gav1.SourceOvirt, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := merge(q(nil, false), c.oga, c.hv, "")
			if !reflect.DeepEqual(m.info.Memory, c.want) || m.sources[guest.GroupMemory] != c.wantSrc ||
				m.stale[guest.GroupMemory] != c.wantStale {
				t.Errorf("got %+v from %q (stale %v), want %+v from %q (stale %v)", m.info.Memory,
					m.sources[guest.GroupMemory], m.stale[guest.GroupMemory], c.want, c.wantSrc, c.wantStale)
			}
			if m.info.Memory == c.want {
				t.Error("the merged group must be a copy")
			}
		})
	}
	if m := merge(q(nil, false), o(nil, false), noHV, ""); m.info.Memory != nil || m.sources[guest.GroupMemory] != "" {
		t.Error("no memory in, no memory out")
	}
}
