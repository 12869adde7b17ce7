package qga

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Limits on a guest-get-vcpus reply that SetVCPUs plans from. A guest cannot have more vCPUs
// than libvirt lets a domain have, so a reply beyond them is hostile or corrupt, and planning
// from it is refused rather than trusted.
const (
	// MaxGuestVCPUs bounds the number of entries of a reply (QEMU's largest machines have
	// 4,096 vCPUs; the margin is for guests that number their CPUs sparsely).
	MaxGuestVCPUs = 16384
	// MaxGuestVCPUID bounds a logical id; libvirt's SetGuestVcpus takes a bitmap indexed by id.
	MaxGuestVCPUID = 65535
)

// VCPUPlan is what guest-set-vcpus must change so that Count vCPUs are online. At most one of
// Online and Offline is non-empty; both are empty when the guest already has Count online.
type VCPUPlan struct {
	// Count is the number of online vCPUs asked for.
	Count int
	// Before is the number of online vCPUs the guest reported.
	Before int
	// Online are the logical ids to bring online, ascending.
	Online []int
	// Offline are the logical ids to take offline, ascending.
	Offline []int
}

// Empty reports whether nothing needs to change.
func (p VCPUPlan) Empty() bool { return len(p.Online) == 0 && len(p.Offline) == 0 }

// String describes the plan for a command's outcome message.
func (p VCPUPlan) String() string {
	switch {
	case len(p.Online) > 0:
		return fmt.Sprintf("vCPUs %s brought online: %d of the guest's vCPUs online (were %d)", FormatCPUList(p.Online), p.Count, p.Before)
	case len(p.Offline) > 0:
		return fmt.Sprintf("vCPUs %s taken offline: %d of the guest's vCPUs online (were %d)", FormatCPUList(p.Offline), p.Count, p.Before)
	}
	return fmt.Sprintf("the guest already has %d vCPUs online; nothing changed", p.Count)
}

// PlanVCPUs plans how to leave exactly count of the guest's vCPUs online, from the guest's
// guest-get-vcpus reply. It brings offline vCPUs online lowest id first, and takes online vCPUs
// offline highest id first; it never takes vCPU 0 offline, nor a vCPU the guest reports as not
// offlinable. It fails, with a message saying what the guest allows, when the reply is not
// believable (duplicate, negative or huge ids, too many entries, no vCPU online) or when count
// cannot be reached: more vCPUs than the guest has, or fewer than must stay online.
func PlanVCPUs(vcpus []VCPU, count int) (VCPUPlan, error) {
	if count < 1 {
		return VCPUPlan{}, fmt.Errorf("count %d: at least one vCPU must stay online", count)
	}
	if len(vcpus) == 0 {
		return VCPUPlan{}, fmt.Errorf("the guest reported no vCPUs")
	}
	if len(vcpus) > MaxGuestVCPUs {
		return VCPUPlan{}, fmt.Errorf("the guest reported %d vCPUs, more than the %d any domain can have", len(vcpus), MaxGuestVCPUs)
	}
	sorted := slices.Clone(vcpus)
	slices.SortFunc(sorted, func(a, b VCPU) int { return a.LogicalID - b.LogicalID })
	online, pinned := 0, 0 // pinned: online vCPUs that must stay online
	for i, v := range sorted {
		if v.LogicalID < 0 || v.LogicalID > MaxGuestVCPUID {
			return VCPUPlan{}, fmt.Errorf("the guest reported vCPU id %d, outside 0-%d", v.LogicalID, MaxGuestVCPUID)
		}
		if i > 0 && sorted[i-1].LogicalID == v.LogicalID {
			return VCPUPlan{}, fmt.Errorf("the guest reported vCPU %d twice", v.LogicalID)
		}
		if v.Online {
			online++
			if v.LogicalID == 0 || !v.CanOffline {
				pinned++
			}
		}
	}
	if online == 0 {
		return VCPUPlan{}, fmt.Errorf("the guest reported none of its %d vCPUs online", len(sorted))
	}
	plan := VCPUPlan{Count: count, Before: online}
	switch {
	case count > len(sorted):
		return VCPUPlan{}, fmt.Errorf("count %d is more than the %d vCPUs the guest has (%d online); hot-plug vCPUs into the domain first",
			count, len(sorted), online)
	case count > online:
		for _, v := range sorted {
			if len(plan.Online) == count-online {
				break
			}
			if !v.Online {
				plan.Online = append(plan.Online, v.LogicalID)
			}
		}
	case count < online:
		if count < pinned {
			return VCPUPlan{}, fmt.Errorf("count %d is fewer than the %d online vCPUs the guest cannot take offline "+
				"(vCPU 0 and vCPUs it reports as not offlinable): at least %d stay online (%d online now)", count, pinned, pinned, online)
		}
		for i := len(sorted) - 1; i >= 0 && len(plan.Offline) < online-count; i-- {
			if v := sorted[i]; v.Online && v.LogicalID != 0 && v.CanOffline {
				plan.Offline = append(plan.Offline, v.LogicalID)
			}
		}
		slices.Reverse(plan.Offline)
	}
	return plan, nil
}

// FormatCPUList formats ascending, distinct ids as a Linux cpulist ("0-3,6").
func FormatCPUList(ids []int) string {
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ids[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(ids[j]))
		}
		i = j + 1
	}
	return b.String()
}
