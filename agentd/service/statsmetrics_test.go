package service

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
)

// statsCollector serves fixed stats, as the service's collector serves its domains' stats.
type statsCollector map[string]*guest.Stats

func (statsCollector) Describe(ch chan<- *prometheus.Desc) { describeStats(ch) }
func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	for uuid, s := range c {
		collectStats(ch, uuid, s)
	}
}

func TestStatsSeries(t *testing.T) {
	cpu := &guest.CPUTimes{}
	cpu.Seconds[guest.CPUUser], cpu.Has[guest.CPUUser] = 40, true
	cpu.Seconds[guest.CPUIdle], cpu.Has[guest.CPUIdle] = 1700, true
	s := &guest.Stats{
		Load: &guest.Load{Load1: 0.5, Load5: 0.25, Load15: 0.125},
		CPU:  cpu,
		Disks: []guest.DiskIO{{Name: "vda", ReadBytes: 1024, WriteBytes: 2048, Reads: 3, Writes: 4, IOTimeSeconds: 1.5,
			HasReadBytes: true, HasWriteBytes: true, HasReads: true, HasWrites: true, HasIOTime: true},
			{Name: "dm-0", Reads: 7, HasReads: true}},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(statsCollector{"u1": s, "u2": nil})
	want := `
# HELP guestagent_guest_load Guest load average over the period (1m, 5m, 15m).
# TYPE guestagent_guest_load gauge
guestagent_guest_load{domain_uuid="u1",period="15m"} 0.125
guestagent_guest_load{domain_uuid="u1",period="1m"} 0.5
guestagent_guest_load{domain_uuid="u1",period="5m"} 0.25
# HELP guestagent_guest_cpu_seconds_total Guest CPU time summed over the guest's online CPUs, per mode (jiffies at USER_HZ=100).
# TYPE guestagent_guest_cpu_seconds_total counter
guestagent_guest_cpu_seconds_total{domain_uuid="u1",mode="idle"} 1700
guestagent_guest_cpu_seconds_total{domain_uuid="u1",mode="user"} 40
# HELP guestagent_guest_disk_reads_total Reads completed on the guest disk.
# TYPE guestagent_guest_disk_reads_total counter
guestagent_guest_disk_reads_total{disk="dm-0",domain_uuid="u1"} 7
guestagent_guest_disk_reads_total{disk="vda",domain_uuid="u1"} 3
# HELP guestagent_guest_disk_write_bytes_total Bytes written to the guest disk, as the guest counts them.
# TYPE guestagent_guest_disk_write_bytes_total counter
guestagent_guest_disk_write_bytes_total{disk="vda",domain_uuid="u1"} 2048
# HELP guestagent_guest_disk_io_time_seconds_total Time the guest disk was busy doing I/O.
# TYPE guestagent_guest_disk_io_time_seconds_total counter
guestagent_guest_disk_io_time_seconds_total{disk="vda",domain_uuid="u1"} 1.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "guestagent_guest_load", "guestagent_guest_cpu_seconds_total",
		"guestagent_guest_disk_reads_total", "guestagent_guest_disk_write_bytes_total", "guestagent_guest_disk_io_time_seconds_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(statsCollector{"u1": s}, "guestagent_guest_disk_read_bytes_total"); n != 1 {
		t.Errorf("read bytes series %d (dm-0 reported none)", n)
	}
}

// TestStatsCaps: whatever reaches the collector (the poller already caps), at most
// guest.MaxStatsDisks disks with unique, bounded, valid UTF-8 names are exported.
func TestStatsCaps(t *testing.T) {
	s := &guest.Stats{}
	for i := range 100 {
		s.Disks = append(s.Disks, guest.DiskIO{Name: fmt.Sprintf("disk\xff%03d", i), Reads: 1, HasReads: true})
	}
	long := strings.Repeat("é", 100)
	s.Disks = append([]guest.DiskIO{{Name: long + "a", Reads: 1, HasReads: true}, {Name: long + "b", Reads: 1, HasReads: true}, {Name: ""}}, s.Disks...)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(statsCollector{"u1": s})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	var names []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "disk" {
					if !utf8.ValidString(l.GetValue()) || len(l.GetValue()) > guest.MaxStatsDiskName {
						t.Errorf("disk label %q", l.GetValue())
					}
					names = append(names, l.GetValue())
				}
			}
		}
	}
	sort.Strings(names)
	if len(names) != guest.MaxStatsDisks || names[0] == names[1] {
		t.Errorf("%d disk series: %v", len(names), names)
	}
}

// The service's collector exports the QGA side's stats of its domains, and a hotplug event
// reaches the QGA side.
func TestServiceStatsAndHotplug(t *testing.T) {
	g := NewWithT(t)
	q := servicefake.NewQGA()
	w := virt.NewFake(runningDomain())
	s, _ := runService(t, Options{Watcher: w, QGA: q})
	g.Eventually(func() []string { return s.Domains() }).Should(ConsistOf(testUUID))
	q.SetStats(testUUID, &guest.Stats{Load: &guest.Load{Load1: 1, Load5: 2, Load15: 3}})
	q.SetStats("other", &guest.Stats{Load: &guest.Load{Load1: 1}}) // not a domain of the service
	reg := prometheus.NewPedanticRegistry()
	MustRegisterCollector(reg, s)
	g.Expect(testutil.GatherAndCount(reg, "guestagent_guest_load")).To(Equal(3))

	w.Hotplug(testUUID, "virtio-disk1", virt.LifecycleDeviceAdded)
	g.Eventually(q.Calls).Should(ContainElement("device " + testUUID))
}
