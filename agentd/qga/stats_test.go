package qga

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"guestagent.io/operator/agentd/guest"
)

// qemu-ga 7.2 (Linux) shapes of the three stats replies.
const (
	cpuStatsReply = `[{"type":"linux","cpu":0,"user":1000,"nice":10,"system":500,"idle":90000,"iowait":20,"irq":0,"softirq":5,"steal":3,"guest":0,"guestnice":0},
		{"type":"linux","cpu":1,"user":3000,"nice":30,"system":700,"idle":80000,"iowait":40,"irq":0,"softirq":7,"steal":1,"guest":0,"guestnice":0}]`
	diskStatsReply = `[{"name":"vda","major":252,"minor":0,"stats":{"read-sectors":2048,"read-ios":100,"read-merges":1,"write-sectors":4096,"write-ios":50,"total-ticks":1500}},
		{"name":"vda1","major":252,"minor":1,"stats":{"read-sectors":2000,"read-ios":90,"write-sectors":4000,"write-ios":40,"total-ticks":1400}},
		{"name":"loop0","major":7,"minor":0,"stats":{"read-sectors":0,"read-ios":0,"write-sectors":0,"write-ios":0}},
		{"name":"dm-0","major":253,"minor":0,"stats":{"read-ios":7}}]`
)

func TestTranslateCPUStats(t *testing.T) {
	c, err := TranslateCPUStats(json.RawMessage(cpuStatsReply))
	if err != nil || c == nil {
		t.Fatalf("TranslateCPUStats: %v, %v", c, err)
	}
	want := map[guest.CPUMode]float64{guest.CPUUser: 40, guest.CPUNice: 0.4, guest.CPUSystem: 12, guest.CPUIdle: 1700,
		guest.CPUIOWait: 0.6, guest.CPUSoftIRQ: 0.12, guest.CPUSteal: 0.04, guest.CPUIRQ: 0, guest.CPUGuest: 0, guest.CPUGuestNice: 0}
	for m, w := range want {
		if !c.Has[m] || math.Abs(c.Seconds[m]-w) > 1e-9 {
			t.Errorf("%s = %v (has %v), want %v", m, c.Seconds[m], c.Has[m], w)
		}
	}
	// optional members stay absent; hostile numbers and foreign types are skipped per entry
	c, err = TranslateCPUStats(json.RawMessage(`[{"type":"linux","user":100},{"type":"linux","user":-5,"idle":1e400},
		{"type":"windows","user":999},{"type":"linux","user":"x"},null,7,{"type":"linux","system":1e15},{"type":"linux","nice":1e30}]`))
	if err != nil || c == nil {
		t.Fatalf("hostile: %v, %v", c, err)
	}
	if c.Seconds[guest.CPUUser] != 1 || c.Has[guest.CPUIdle] || !c.Has[guest.CPUSystem] || c.Has[guest.CPUNice] {
		t.Errorf("hostile: %+v", c)
	}
	for _, raw := range []string{`[]`, `[{"type":"linux"}]`, `[{"type":"windows","user":1}]`} {
		if c, err := TranslateCPUStats(json.RawMessage(raw)); c != nil || err != nil {
			t.Errorf("%s: nothing usable must give nil, got %+v, %v", raw, c, err)
		}
	}
	for _, raw := range []string{`{}`, `"x"`, ``, `[`} {
		if _, err := TranslateCPUStats(json.RawMessage(raw)); err == nil {
			t.Errorf("%q: want an error", raw)
		}
	}
}

func TestTranslateDiskStats(t *testing.T) {
	ds, err := TranslateDiskStats(json.RawMessage(diskStatsReply))
	if err != nil {
		t.Fatal(err)
	}
	want := []guest.DiskIO{
		{Name: "vda", ReadBytes: 2048 * 512, WriteBytes: 4096 * 512, Reads: 100, Writes: 50, IOTimeSeconds: 1.5,
			HasReadBytes: true, HasWriteBytes: true, HasReads: true, HasWrites: true, HasIOTime: true},
		{Name: "dm-0", Reads: 7, HasReads: true},
	}
	if fmt.Sprint(ds) != fmt.Sprint(want) {
		t.Errorf("got %+v\nwant %+v", ds, want)
	}
}

func TestTranslateDiskStatsHostile(t *testing.T) {
	var b strings.Builder
	b.WriteString(`[{"name":"a` + "\xff" + `b","stats":{"read-ios":1}},{"name":"` + strings.Repeat("é", 100) + `","stats":{"read-ios":1}},`)
	b.WriteString(`{"name":"` + strings.Repeat("é", 100) + `x","stats":{"read-ios":2}},{"name":"neg","stats":{"read-ios":-1,"write-ios":1e300}},`)
	b.WriteString(`{"name":"","stats":{"read-ios":1}},{"name":"nostats"},{"name":7},`)
	for i := range 100 {
		fmt.Fprintf(&b, `{"name":"sd%c%c","stats":{"write-ios":%d}},`, 'a'+i/26, 'a'+i%26, i+1)
	}
	b.WriteString(`{"name":"last","stats":{"read-ios":1}}]`)
	ds, err := TranslateDiskStats(json.RawMessage(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != guest.MaxStatsDisks {
		t.Fatalf("%d disks, want the cap %d", len(ds), guest.MaxStatsDisks)
	}
	seen := map[string]bool{}
	for _, d := range ds {
		if !utf8.ValidString(d.Name) || len(d.Name) > guest.MaxStatsDiskName || d.Name == "" || seen[d.Name] {
			t.Errorf("bad disk name %q", d.Name)
		}
		seen[d.Name] = true
		if d.Name == "neg" && (d.HasReads || !d.HasWrites) {
			t.Errorf("negative counter kept: %+v", d)
		}
	}
	if !seen["a\uFFFDb"] || !seen[strings.Repeat("é", 16)] {
		t.Errorf("names %v", seen)
	}
}

// An entry of the wrong shape costs only that entry; a reply that is not a list is an error.
func TestTranslateStatsDropOnlyTheBadEntry(t *testing.T) {
	ds, err := TranslateDiskStats(json.RawMessage(`[{"name":7},{"name":"vdb","stats":{"read-ios":3}},{"name":"vdc","stats":{"read-ios":"x"}}]`))
	if err != nil || len(ds) != 1 || ds[0].Name != "vdb" || ds[0].Reads != 3 {
		t.Errorf("disks %+v, %v", ds, err)
	}
	cs, err := TranslateCPUStats(json.RawMessage(`[{"type":"linux","user":"x"},{"type":"linux","cpu":1,"user":200}]`))
	if err != nil || cs == nil || cs.Seconds[guest.CPUUser] != 2 {
		t.Errorf("cpu times %+v, %v", cs, err)
	}
	for _, raw := range []string{`{"name":"vda"}`, `[{"name":"vda"}`, `7`} {
		if _, err := TranslateDiskStats(json.RawMessage(raw)); err == nil {
			t.Errorf("diskstats %s accepted", raw)
		}
		if _, err := TranslateCPUStats(json.RawMessage(raw)); err == nil {
			t.Errorf("cpustats %s accepted", raw)
		}
	}
}

func TestTranslateLoad(t *testing.T) {
	l, err := TranslateLoad(json.RawMessage(`{"load1":0.5,"load5":1.25,"load15":2}`))
	if err != nil || *l != (guest.Load{Load1: 0.5, Load5: 1.25, Load15: 2}) {
		t.Fatalf("%+v, %v", l, err)
	}
	for _, raw := range []string{`{"load1":0.5,"load5":1}`, `{"load1":-1,"load5":1,"load15":1}`, `{"load1":1e300,"load5":1,"load15":1}`,
		`{"load1":"1","load5":1,"load15":1}`, `[]`, `null`, `{"load1":1e400,"load5":1,"load15":1}`} {
		if l, err := TranslateLoad(json.RawMessage(raw)); err == nil {
			t.Errorf("%s accepted: %+v", raw, l)
		}
	}
}

// FuzzTranslateStats: guest-get-load, guest-get-cpustats and guest-get-diskstats replies.
func FuzzTranslateStats(f *testing.F) {
	f.Add([]byte(cpuStatsReply))
	f.Add([]byte(diskStatsReply))
	f.Add([]byte(`{"load1":0.5,"load5":1.25,"load15":2}`))
	f.Add([]byte(`[{"type":"linux","user":-1e400},{"name":"\xff","stats":{"read-ios":18446744073709551616}}]`))
	f.Fuzz(checkTranslateStats)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

// checkTranslateStats is FuzzTranslateStats's property check: no panic, finite non-negative
// numbers, bounded unique valid UTF-8 disk names.
func checkTranslateStats(t *testing.T, raw []byte) {
	if l, err := TranslateLoad(raw); err == nil {
		if !finite(l.Load1) || !finite(l.Load5) || !finite(l.Load15) {
			t.Errorf("load %+v", l)
		}
	}
	if c, err := TranslateCPUStats(raw); err == nil && c != nil {
		for m := range guest.NumCPUModes {
			if !finite(c.Seconds[m]) || (!c.Has[m] && c.Seconds[m] != 0) {
				t.Errorf("cpu %s = %v", m, c.Seconds[m])
			}
		}
	}
	ds, err := TranslateDiskStats(raw)
	if err != nil {
		return
	}
	if len(ds) > guest.MaxStatsDisks {
		t.Errorf("%d disks", len(ds))
	}
	seen := map[string]bool{}
	for _, d := range ds {
		if d.Name == "" || !utf8.ValidString(d.Name) || len(d.Name) > guest.MaxStatsDiskName || seen[d.Name] {
			t.Errorf("disk name %q", d.Name)
		}
		seen[d.Name] = true
		for _, v := range []float64{d.ReadBytes, d.WriteBytes, d.Reads, d.Writes, d.IOTimeSeconds} {
			if !finite(v) {
				t.Errorf("disk %q: %v", d.Name, v)
			}
		}
	}
}

// BenchmarkTranslateStats: the per-domain translation cost of one stats round of a 16-vCPU,
// 8-disk guest (cpustats and diskstats replies as qemu-ga 7.2 sends them).
func BenchmarkTranslateStats(b *testing.B) {
	var cpu, disk strings.Builder
	cpu.WriteString("[")
	for i := range 16 {
		if i > 0 {
			cpu.WriteString(",")
		}
		fmt.Fprintf(&cpu, `{"type":"linux","cpu":%d,"user":123456,"nice":12,"system":45678,"idle":9876543,"iowait":1234,"irq":0,"softirq":567,"steal":89,"guest":0,"guestnice":0}`, i)
	}
	cpu.WriteString("]")
	disk.WriteString("[")
	for i := range 8 {
		if i > 0 {
			disk.WriteString(",")
		}
		fmt.Fprintf(&disk, `{"name":"vd%c","major":252,"minor":%d,"stats":{"read-sectors":123456789,"read-ios":1234567,"read-merges":1234,"write-sectors":987654321,"write-ios":7654321,"write-merges":4321,"discard-sectors":0,"discard-ios":0,"discard-merges":0,"flush-ios":1234,"read-ticks":123456,"write-ticks":654321,"discard-ticks":0,"flush-ticks":1234,"ios-pgr":0,"total-ticks":765432,"weight-ticks":987654}}`, 'a'+i, i*16)
	}
	disk.WriteString("]")
	load := json.RawMessage(`{"load1":0.5,"load5":0.25,"load15":0.125}`)
	c, d := json.RawMessage(cpu.String()), json.RawMessage(disk.String())
	b.ReportAllocs()
	for b.Loop() {
		_, _ = TranslateLoad(load)
		_, _ = TranslateCPUStats(c)
		_, _ = TranslateDiskStats(d)
	}
}
