package publish

import (
	"fmt"

	"k8s.io/utils/ptr"

	"guestagent.io/operator/api/v1alpha1"
)

// Threshold decides whether a volatile figure (free memory, used filesystem bytes) changed enough
// to be written to the API. A change is significant when its magnitude is at least
// max(Relative × total, Absolute); smaller changes keep the previously published value, so they
// cause no write. A zero Threshold publishes every change. Prometheus metrics, not the object,
// carry exact current values.
type Threshold struct {
	// Relative is a fraction (0..1) of the corresponding total (memory total, swap total,
	// filesystem size).
	Relative float64
	// Absolute is a change in bytes.
	Absolute int64
}

// DefaultThreshold is used for memory and filesystem figures when Options leave them nil:
// 5 % of the total, and never less than 16 MiB.
var DefaultThreshold = Threshold{Relative: 0.05, Absolute: 16 << 20}

func (t Threshold) validate(name string) error {
	if t.Relative < 0 || t.Relative > 1 || t.Absolute < 0 {
		return fmt.Errorf("%s threshold %+v: relative must be in [0,1] and absolute >= 0", name, t)
	}
	return nil
}

func (t Threshold) significant(oldV, newV, total int64) bool {
	d := newV - oldV
	if d < 0 {
		d = -d
	}
	limit := max(int64(t.Relative*float64(total)), t.Absolute)
	return d > 0 && d >= limit
}

// keep replaces *cur with the previously published value when the change is not significant.
func (t Threshold) keep(cur **int64, prev, total *int64) {
	if *cur == nil || prev == nil {
		return
	}
	if !t.significant(*prev, **cur, ptr.Deref(total, 0)) {
		*cur = ptr.To(*prev)
	}
}

// keepCounter replaces *cur with the previously published count unless the count changed by at
// least Relative of the previous count (a counter since boot: its own size is the scale). A
// decrease (the guest rebooted) is always significant.
func (t Threshold) keepCounter(cur **int64, prev *int64) {
	if *cur == nil || prev == nil || **cur < *prev {
		return
	}
	d := **cur - *prev
	if d == 0 || float64(d) < t.Relative*float64(*prev) {
		*cur = ptr.To(*prev)
	}
}

// Rates (per second) are written when they change by at least half of the larger value and by
// at least minRateChange: a busy guest's rates jitter on every report.
const minRateChange = 10

func keepRate(cur **int64, prev *int64) {
	if *cur == nil || prev == nil {
		return
	}
	d := **cur - *prev
	if d < 0 {
		d = -d
	}
	if d < max(max(**cur, *prev)/2, minRateChange) {
		*cur = ptr.To(*prev)
	}
}

// keepInsignificant applies the thresholds to the volatile figures of st against prev.
func (b *builder) keepInsignificant(st, prev *v1alpha1.GuestAgentStatusStatus) {
	if m, p := st.Memory, prev.Memory; m != nil && p != nil {
		total := m.TotalBytes
		if total == nil {
			total = m.BalloonBytes // host-side figures only
		}
		b.memory.keep(&m.FreeBytes, p.FreeBytes, total)
		b.memory.keep(&m.UnusedBytes, p.UnusedBytes, total)
		b.memory.keep(&m.UsableBytes, p.UsableBytes, total)
		b.memory.keep(&m.DiskCachesBytes, p.DiskCachesBytes, total)
		b.memory.keep(&m.BuffersBytes, p.BuffersBytes, total)
		b.memory.keep(&m.CachedBytes, p.CachedBytes, total)
		b.memory.keep(&m.HostRSSBytes, p.HostRSSBytes, total)
		b.memory.keep(&m.SwapInBytes, p.SwapInBytes, total)
		b.memory.keep(&m.SwapOutBytes, p.SwapOutBytes, total)
		b.memory.keep(&m.SwapUsedBytes, p.SwapUsedBytes, m.SwapTotalBytes)
		b.memory.keepCounter(&m.MajorPageFaults, p.MajorPageFaults)
		b.memory.keepCounter(&m.MinorPageFaults, p.MinorPageFaults)
		keepRate(&m.SwapInPerSecond, p.SwapInPerSecond)
		keepRate(&m.SwapOutPerSecond, p.SwapOutPerSecond)
		keepRate(&m.PageFaultsPerSecond, p.PageFaultsPerSecond)
		keepRate(&m.MajorPageFaultsPerSecond, p.MajorPageFaultsPerSecond)
	}
	if len(st.Filesystems) == 0 || len(prev.Filesystems) == 0 {
		return
	}
	used := make(map[string]*int64, len(prev.Filesystems))
	for _, f := range prev.Filesystems {
		used[f.Mountpoint] = f.UsedBytes
	}
	for i := range st.Filesystems {
		f := &st.Filesystems[i]
		b.filesystem.keep(&f.UsedBytes, used[f.Mountpoint], f.TotalBytes)
	}
}
