package virt

import (
	"fmt"

	"libvirt.org/go/libvirt"
)

// MemoryStatTag names one of libvirt's memory statistics (virDomainMemoryStatTags). Sizes are
// in KiB, except where noted.
type MemoryStatTag int

// The memory statistics agentd reads. The numbers are libvirt's.
const (
	// MemStatSwapIn is the data read from swap space since the guest booted (KiB).
	MemStatSwapIn MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_SWAP_IN)
	// MemStatSwapOut is the data written to swap space since the guest booted (KiB).
	MemStatSwapOut MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_SWAP_OUT)
	// MemStatMajorFault counts page faults that needed disk I/O since the guest booted.
	MemStatMajorFault MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_MAJOR_FAULT)
	// MemStatMinorFault counts page faults served without disk I/O since the guest booted.
	MemStatMinorFault MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_MINOR_FAULT)
	// MemStatUnused is memory the guest leaves unused (Linux MemFree) (KiB).
	MemStatUnused MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_UNUSED)
	// MemStatAvailable is the memory the guest sees as its total (Linux MemTotal) (KiB).
	MemStatAvailable MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_AVAILABLE)
	// MemStatActualBalloon is the memory the balloon currently leaves to the guest (KiB); the
	// domain's current memory when it has no balloon device.
	MemStatActualBalloon MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_ACTUAL_BALLOON)
	// MemStatRSS is the resident set size of the QEMU process on the host (KiB).
	MemStatRSS MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_RSS)
	// MemStatUsable is memory the guest could give up without swapping (Linux MemAvailable) (KiB).
	MemStatUsable MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_USABLE)
	// MemStatLastUpdate is when the guest last updated its statistics (seconds since the epoch).
	MemStatLastUpdate MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_LAST_UPDATE)
	// MemStatDiskCaches is memory the guest can reclaim without I/O (page cache) (KiB).
	MemStatDiskCaches MemoryStatTag = MemoryStatTag(libvirt.DOMAIN_MEMORY_STAT_DISK_CACHES)
)

// MemoryStat is one memory statistic of a domain as libvirt reports it.
type MemoryStat struct {
	Tag   MemoryStatTag
	Value uint64
}

// maxMemoryStats bounds the statistics asked for (libvirt returns at most one per tag).
const maxMemoryStats = 32

// MemoryStats reads a running domain's memory statistics (virDomainMemoryStats): the balloon
// driver's guest-side figures when the domain has a balloon device with a statistics period,
// plus the host-side actual balloon size and QEMU's RSS. For a domain without a balloon device,
// for which libvirt reports only the RSS, the actual size is the domain's current memory
// (virDomainGetInfo).
func (m *Manager) MemoryStats(uuid string) ([]MemoryStat, error) {
	d, err := m.LookupDomain(uuid)
	if err != nil {
		return nil, err
	}
	defer func() { _ = d.Free() }()
	callsMemoryStats.Inc()
	raw, err := d.MemoryStats(maxMemoryStats, 0)
	if err != nil {
		return nil, fmt.Errorf("memory stats of %s: %w", uuid, err)
	}
	out := make([]MemoryStat, 0, len(raw)+1)
	haveActual := false
	for _, s := range raw {
		out = append(out, MemoryStat{Tag: MemoryStatTag(s.Tag), Value: s.Val})
		haveActual = haveActual || MemoryStatTag(s.Tag) == MemStatActualBalloon
	}
	if !haveActual {
		// Without a balloon device libvirt reports only rss; the domain's current memory is
		// what "actual" would be.
		callsInfo.Inc()
		if info, err := d.GetInfo(); err == nil && info.Memory > 0 {
			out = append(out, MemoryStat{Tag: MemStatActualBalloon, Value: info.Memory})
		}
	}
	return out, nil
}

// SetMemoryStatsPeriod sets the balloon statistics period of a running domain, live only
// (VIR_DOMAIN_AFFECT_LIVE): the persistent definition is not changed, and the setting ends with
// the QEMU process.
func (m *Manager) SetMemoryStatsPeriod(uuid string, seconds int) error {
	d, err := m.LookupDomain(uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	callsSetStatsPeriod.Inc()
	if err := d.SetMemoryStatsPeriod(seconds, libvirt.DOMAIN_MEM_LIVE); err != nil {
		return fmt.Errorf("set memory stats period of %s: %w", uuid, err)
	}
	return nil
}
