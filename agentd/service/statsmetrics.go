package service

import (
	"github.com/prometheus/client_golang/prometheus"

	"guestagent.io/operator/agentd/guest"
)

// Metrics-only guest figures (load, CPU time, disk I/O) from the QEMU guest agent's stats
// commands. They never reach the GuestAgentStatus; the collector reads them at scrape time.
// Cardinality per domain is bounded: 3 load series, at most guest.NumCPUModes CPU series, at
// most guest.MaxStatsDisks disks × 5 disk series (disk names at most guest.MaxStatsDiskName
// bytes of valid UTF-8, unique: the poller guarantees it, collectStats re-checks).
var (
	descLoad = prometheus.NewDesc("guestagent_guest_load",
		"Guest load average over the period (1m, 5m, 15m).", []string{"domain_uuid", "period"}, nil)
	descCPUSeconds = prometheus.NewDesc("guestagent_guest_cpu_seconds_total",
		"Guest CPU time summed over the guest's online CPUs, per mode (jiffies at USER_HZ=100).",
		[]string{"domain_uuid", "mode"}, nil)
	descDiskReadBytes = prometheus.NewDesc("guestagent_guest_disk_read_bytes_total",
		"Bytes read from the guest disk, as the guest counts them.", []string{"domain_uuid", "disk"}, nil)
	descDiskWriteBytes = prometheus.NewDesc("guestagent_guest_disk_write_bytes_total",
		"Bytes written to the guest disk, as the guest counts them.", []string{"domain_uuid", "disk"}, nil)
	descDiskReads = prometheus.NewDesc("guestagent_guest_disk_reads_total",
		"Reads completed on the guest disk.", []string{"domain_uuid", "disk"}, nil)
	descDiskWrites = prometheus.NewDesc("guestagent_guest_disk_writes_total",
		"Writes completed on the guest disk.", []string{"domain_uuid", "disk"}, nil)
	descDiskIOTime = prometheus.NewDesc("guestagent_guest_disk_io_time_seconds_total",
		"Time the guest disk was busy doing I/O.", []string{"domain_uuid", "disk"}, nil)
)

func describeStats(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLoad, descCPUSeconds, descDiskReadBytes, descDiskWriteBytes, descDiskReads,
		descDiskWrites, descDiskIOTime} {
		ch <- d
	}
}

// collectStats emits one domain's metrics-only series (none for nil).
func collectStats(ch chan<- prometheus.Metric, uuid string, s *guest.Stats) {
	if s == nil {
		return
	}
	emit := func(d *prometheus.Desc, t prometheus.ValueType, val float64, label string) {
		if m, err := prometheus.NewConstMetric(d, t, val, uuid, label); err == nil {
			ch <- m
		}
	}
	if l := s.Load; l != nil {
		emit(descLoad, prometheus.GaugeValue, l.Load1, "1m")
		emit(descLoad, prometheus.GaugeValue, l.Load5, "5m")
		emit(descLoad, prometheus.GaugeValue, l.Load15, "15m")
	}
	if c := s.CPU; c != nil {
		for m := guest.CPUMode(0); m < guest.NumCPUModes; m++ {
			if c.Has[m] {
				emit(descCPUSeconds, prometheus.CounterValue, c.Seconds[m], m.String())
			}
		}
	}
	seen := map[string]bool{}
	for _, d := range s.Disks {
		name := guest.CutUTF8(labelValue(d.Name), guest.MaxStatsDiskName)
		if len(seen) >= guest.MaxStatsDisks || name == "" || seen[name] {
			continue
		}
		seen[name] = true
		for _, f := range []struct {
			d   *prometheus.Desc
			v   float64
			has bool
		}{
			{descDiskReadBytes, d.ReadBytes, d.HasReadBytes},
			{descDiskWriteBytes, d.WriteBytes, d.HasWriteBytes},
			{descDiskReads, d.Reads, d.HasReads},
			{descDiskWrites, d.Writes, d.HasWrites},
			{descDiskIOTime, d.IOTimeSeconds, d.HasIOTime},
		} {
			if f.has {
				emit(f.d, prometheus.CounterValue, f.v, name)
			}
		}
	}
}
