package memstats

import (
	"math"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// maxBytes is the largest figure kept, in bytes: the API publishes int64, and a guest can report
// anything up to 2^64-1 KiB.
const maxBytes = math.MaxInt64

// kibToBytes converts a KiB figure to bytes, saturating at maxBytes instead of overflowing.
func kibToBytes(v uint64) uint64 {
	if v > maxBytes/1024 {
		return maxBytes
	}
	return v * 1024
}

// count caps a counter at maxBytes (the API's int64).
func count(v uint64) uint64 { return min(v, maxBytes) }

// maxUpdateSkew bounds how far in the future a guest's last-update time may be: later times
// (a guest clock far ahead, or garbage) are dropped.
const maxUpdateSkew = 24 * time.Hour

// Translate turns libvirt's memory statistics into the guest model, or nil when there are none.
// now bounds the guest's last-update time.
func Translate(stats []virt.MemoryStat, now time.Time) *guest.Memory {
	if len(stats) == 0 {
		return nil
	}
	m := &guest.Memory{}
	known := false
	for _, s := range stats {
		switch s.Tag {
		case virt.MemStatAvailable:
			m.TotalBytes = kibToBytes(s.Value)
		case virt.MemStatUnused:
			m.UnusedBytes = kibToBytes(s.Value)
		case virt.MemStatUsable:
			m.UsableBytes = kibToBytes(s.Value)
		case virt.MemStatDiskCaches:
			m.DiskCachesBytes = kibToBytes(s.Value)
		case virt.MemStatActualBalloon:
			m.BalloonBytes = kibToBytes(s.Value)
		case virt.MemStatRSS:
			m.HostRSSBytes = kibToBytes(s.Value)
		case virt.MemStatSwapIn:
			m.SwapInBytes, m.HasCounters = kibToBytes(s.Value), true
		case virt.MemStatSwapOut:
			m.SwapOutBytes, m.HasCounters = kibToBytes(s.Value), true
		case virt.MemStatMajorFault:
			m.MajorPageFaults, m.HasCounters = count(s.Value), true
		case virt.MemStatMinorFault:
			m.MinorPageFaults, m.HasCounters = count(s.Value), true
		case virt.MemStatLastUpdate:
			if s.Value > 0 && s.Value <= uint64(now.Add(maxUpdateSkew).Unix()) {
				m.StatsUpdated = time.Unix(int64(s.Value), 0).UTC()
			}
		default:
			continue
		}
		known = true
	}
	if !known {
		return nil
	}
	return m
}
