package publish

import (
	"math"
	"testing"

	"k8s.io/utils/ptr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// libvirtDesired is a QGA-only domain whose memory comes from libvirt's balloon statistics.
func libvirtDesired(mem *guest.Memory) Desired {
	d := sampleDesired("0123abcd-0000-4000-8000-000000000001", "mem")
	d.Info.Memory = mem
	d.Sources[guest.GroupMemory] = v1alpha1.SourceLibvirt
	return d
}

func TestMemoryFromLibvirtIsPublishedWithItsSource(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	mem := &guest.Memory{TotalBytes: 4 << 30, UnusedBytes: 1 << 30, UsableBytes: 3 << 30, DiskCachesBytes: 1 << 29,
		BalloonBytes: 4 << 30, HostRSSBytes: 1 << 30, HasCounters: true, SwapInBytes: 0, SwapOutBytes: 8192,
		MajorPageFaults: 12, MinorPageFaults: 34567}
	d := libvirtDesired(mem)
	st := b.build(&d, nil, newClock().at())
	want := v1alpha1.GuestMemory{TotalBytes: ptr.To[int64](4 << 30), UnusedBytes: ptr.To[int64](1 << 30),
		UsableBytes: ptr.To[int64](3 << 30), DiskCachesBytes: ptr.To[int64](1 << 29), BalloonBytes: ptr.To[int64](4 << 30),
		HostRSSBytes: ptr.To[int64](1 << 30), SwapInBytes: ptr.To[int64](0), SwapOutBytes: ptr.To[int64](8192),
		MajorPageFaults: ptr.To[int64](12), MinorPageFaults: ptr.To[int64](34567)}
	if st.Memory == nil || !semanticEqual(*st.Memory, want) {
		t.Fatalf("memory = %+v, want %+v", st.Memory, want)
	}
	g := findGroup(st.DataGroups, string(guest.GroupMemory))
	if g == nil || g.Source != v1alpha1.SourceLibvirt {
		t.Fatalf("memory data group = %+v, want source Libvirt", g)
	}
}

func TestMemoryHostileValuesAreClamped(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	d := libvirtDesired(&guest.Memory{TotalBytes: math.MaxUint64, UsableBytes: 1 << 63, HasCounters: true,
		MajorPageFaults: math.MaxUint64, HasRates: true, PageFaultRate: math.MaxUint64})
	st := b.build(&d, nil, newClock().at())
	for name, v := range map[string]*int64{"total": st.Memory.TotalBytes, "usable": st.Memory.UsableBytes,
		"majorPageFaults": st.Memory.MajorPageFaults, "pageFaultsPerSecond": st.Memory.PageFaultsPerSecond} {
		if v == nil || *v != math.MaxInt64 {
			t.Errorf("%s = %v, want clamped to MaxInt64", name, v)
		}
	}
}

func TestMemoryVolatileFiguresNeedSignificantChange(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	clk := newClock()
	mem := guest.Memory{TotalBytes: 4 << 30, UsableBytes: 2 << 30, HostRSSBytes: 1 << 30, BalloonBytes: 4 << 30,
		HasCounters: true, MinorPageFaults: 100000, MajorPageFaults: 0, HasRates: true, PageFaultRate: 1000}
	d := libvirtDesired(&mem)
	first := b.build(&d, nil, clk.at())

	// Small moves of every volatile figure: nothing changes in the status.
	mem.UsableBytes += 10 << 20   // < 16 MiB
	mem.HostRSSBytes += 100 << 20 // 2.4 % of 4 GiB
	mem.MinorPageFaults += 4000   // 4 % of the count
	mem.PageFaultRate = 1300      // < half
	d.Info.Memory = &mem
	second := b.build(&d, first, clk.at())
	if !semanticEqual(first.Memory, second.Memory) {
		t.Fatalf("insignificant changes reached the status:\n%+v\n%+v", first.Memory, second.Memory)
	}

	// Significant moves are published exactly.
	mem.UsableBytes += 300 << 20
	mem.MinorPageFaults = 106000
	mem.MajorPageFaults = 1 // from 0: any growth is significant
	mem.PageFaultRate = 5000
	mem.BalloonBytes = 3 << 30 // not volatile: exact
	third := b.build(&d, second, clk.at())
	if *third.Memory.UsableBytes != int64(mem.UsableBytes) || *third.Memory.MinorPageFaults != 106000 ||
		*third.Memory.MajorPageFaults != 1 || *third.Memory.PageFaultsPerSecond != 5000 || *third.Memory.BalloonBytes != 3<<30 {
		t.Errorf("significant changes not published: %+v", third.Memory)
	}
	if *third.Memory.HostRSSBytes != *first.Memory.HostRSSBytes {
		t.Errorf("RSS moved by less than the threshold overall, got %d", *third.Memory.HostRSSBytes)
	}
	// A counter that went down (the guest rebooted) is published at once.
	mem.MinorPageFaults = 50
	fourth := b.build(&d, third, clk.at())
	if *fourth.Memory.MinorPageFaults != 50 {
		t.Errorf("a reset counter must be published, got %d", *fourth.Memory.MinorPageFaults)
	}
}
