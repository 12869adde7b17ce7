package qga

// Translations of the metrics-only commands (guest-get-load, guest-get-cpustats,
// guest-get-diskstats) to guest.Stats parts. Guests are untrusted: every entry is decoded on its
// own (one malformed entry does not void the others), numbers must be finite, non-negative and
// within uint64 range, lists are capped, disk names become short valid UTF-8.

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"

	"guestagent.io/operator/agentd/guest"
)

// UserHZ is the clock tick rate guest-get-cpustats counts in (Linux USER_HZ, 100 on every
// architecture Linux guests run on).
const UserHZ = 100

// SectorBytes is the unit of the sector counts of guest-get-diskstats (/proc/diskstats counts
// 512-byte sectors whatever the device's block size).
const SectorBytes = 512

// Caps on what one stats reply can contribute (cost stays linear and small).
const (
	maxStatsEntries = 4096 // entries of a cpustats or diskstats reply looked at
	maxLoad         = 1e9  // a larger load average is nonsense
)

// statNumber returns v when it is a usable counter or gauge: finite, ≥ 0, ≤ 2^64.
func statNumber(v *float64) (float64, bool) {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0 || *v > math.MaxUint64 {
		return 0, false
	}
	return *v, true
}

// decodeEntries decodes a JSON array reply into at most maxStatsEntries entries. When every
// entry has the expected shape this is one pass; otherwise the entries are decoded one by one and
// an entry that does not fit is dropped, so a buggy or hostile guest loses only that entry.
func decodeEntries[T any](raw json.RawMessage, cmd string) ([]T, error) {
	var all []T
	if err := json.Unmarshal(raw, &all); err == nil {
		return all[:min(len(all), maxStatsEntries)], nil
	}
	var es []json.RawMessage
	if err := json.Unmarshal(raw, &es); err != nil {
		return nil, fmt.Errorf("%s reply: %w", cmd, err)
	}
	all = make([]T, 0, min(len(es), maxStatsEntries))
	for _, e := range es[:min(len(es), maxStatsEntries)] {
		var v T
		if json.Unmarshal(e, &v) == nil {
			all = append(all, v)
		}
	}
	return all, nil
}

type loadReply struct {
	Load1  *float64 `json:"load1"`
	Load5  *float64 `json:"load5"`
	Load15 *float64 `json:"load15"`
}

// TranslateLoad converts guest-get-load. All three averages must be present and sane.
func TranslateLoad(raw json.RawMessage) (*guest.Load, error) {
	var r loadReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s reply: %w", CmdLoad, err)
	}
	l1, ok1 := statNumber(r.Load1)
	l5, ok5 := statNumber(r.Load5)
	l15, ok15 := statNumber(r.Load15)
	if !ok1 || !ok5 || !ok15 || l1 > maxLoad || l5 > maxLoad || l15 > maxLoad {
		return nil, fmt.Errorf("%s reply: missing or invalid load averages", CmdLoad)
	}
	return &guest.Load{Load1: l1, Load5: l5, Load15: l15}, nil
}

// cpuStat is one guest-get-cpustats entry (GuestCpuStatsLinux; the mode members are optional
// on the wire, in jiffies).
type cpuStat struct {
	Type      string   `json:"type"`
	User      *float64 `json:"user"`
	Nice      *float64 `json:"nice"`
	System    *float64 `json:"system"`
	Idle      *float64 `json:"idle"`
	IOWait    *float64 `json:"iowait"`
	IRQ       *float64 `json:"irq"`
	SoftIRQ   *float64 `json:"softirq"`
	Steal     *float64 `json:"steal"`
	Guest     *float64 `json:"guest"`
	GuestNice *float64 `json:"guestnice"`
}

// TranslateCPUStats converts guest-get-cpustats: jiffies per CPU and mode, summed over the CPUs
// per mode and converted to seconds (UserHZ). Entries of other types than "linux" and invalid
// numbers are skipped; a reply without any usable number gives nil.
func TranslateCPUStats(raw json.RawMessage) (*guest.CPUTimes, error) {
	es, err := decodeEntries[cpuStat](raw, CmdCPUStats)
	if err != nil {
		return nil, err
	}
	out := &guest.CPUTimes{}
	found := false
	for _, c := range es {
		if c.Type != "linux" {
			continue
		}
		for m, v := range [guest.NumCPUModes]*float64{c.User, c.Nice, c.System, c.Idle, c.IOWait, c.IRQ, c.SoftIRQ, c.Steal, c.Guest, c.GuestNice} {
			if j, ok := statNumber(v); ok {
				out.Seconds[m] += j / UserHZ
				out.Has[m] = true
				found = true
			}
		}
	}
	if !found {
		return nil, nil
	}
	return out, nil
}

// diskStat is one guest-get-diskstats entry (GuestDiskStatsInfo); every counter is optional.
type diskStat struct {
	Name  string `json:"name"`
	Stats *struct {
		ReadSectors  *float64 `json:"read-sectors"`
		ReadIOs      *float64 `json:"read-ios"`
		WriteSectors *float64 `json:"write-sectors"`
		WriteIOs     *float64 `json:"write-ios"`
		TotalTicks   *float64 `json:"total-ticks"` // ms spent doing I/O
	} `json:"stats"`
}

// partitionNameRE matches partitions of the common naming schemes (vda1, sdb2, xvda1, nvme0n1p1,
// mmcblk0p1): their I/O is already counted on the whole disk.
var partitionNameRE = regexp.MustCompile(`^(?:(?:[hsv]|xv)d[a-z]+[0-9]+|(?:nvme[0-9]+n[0-9]+|mmcblk[0-9]+)p[0-9]+)$`)

// DiskStatName makes a guest disk name a bounded label value: valid UTF-8 (invalid bytes become
// U+FFFD), at most guest.MaxStatsDiskName bytes, cut at a character boundary.
func DiskStatName(s string) string {
	return guest.CutUTF8(strings.ToValidUTF8(s, "\uFFFD"), guest.MaxStatsDiskName)
}

// TranslateDiskStats converts guest-get-diskstats. Partitions and devices without any I/O
// (unused loop and ram devices) are skipped, names are bounded (DiskStatName) and unique (the
// first entry of a name wins), and at most guest.MaxStatsDisks disks are kept, in reply order.
func TranslateDiskStats(raw json.RawMessage) ([]guest.DiskIO, error) {
	es, err := decodeEntries[diskStat](raw, CmdDiskStats)
	if err != nil {
		return nil, err
	}
	out := []guest.DiskIO{}
	seen := map[string]bool{}
	for _, d := range es {
		if len(out) >= guest.MaxStatsDisks {
			break
		}
		if d.Stats == nil || d.Name == "" || partitionNameRE.MatchString(d.Name) {
			continue
		}
		name := DiskStatName(d.Name)
		if name == "" || seen[name] {
			continue
		}
		io := guest.DiskIO{Name: name}
		if v, ok := statNumber(d.Stats.ReadSectors); ok {
			io.ReadBytes, io.HasReadBytes = v*SectorBytes, true
		}
		if v, ok := statNumber(d.Stats.WriteSectors); ok {
			io.WriteBytes, io.HasWriteBytes = v*SectorBytes, true
		}
		if v, ok := statNumber(d.Stats.ReadIOs); ok {
			io.Reads, io.HasReads = v, true
		}
		if v, ok := statNumber(d.Stats.WriteIOs); ok {
			io.Writes, io.HasWrites = v, true
		}
		if v, ok := statNumber(d.Stats.TotalTicks); ok {
			io.IOTimeSeconds, io.HasIOTime = v/1000, true
		}
		if io.Reads == 0 && io.Writes == 0 && io.ReadBytes == 0 && io.WriteBytes == 0 {
			continue // never used (or nothing usable reported)
		}
		seen[name] = true
		out = append(out, io)
	}
	return out, nil
}
