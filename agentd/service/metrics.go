package service

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"guestagent.io/operator/agentd/guest"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Per-domain guest metrics are computed at scrape time from the service's current views, so a
// domain that disappears disappears from /metrics without bookkeeping, and volatile figures
// (memory, used bytes) are exact here even though the GuestAgentStatus only carries significant
// changes.
var (
	descInfo = prometheus.NewDesc("guestagent_guest_info",
		"Guest identity (always 1), with OS labels.",
		[]string{"domain_uuid", "domain", "os_type", "os_id", "os_version", "kernel_release", "arch", "hostname"}, nil)
	descAgentConnected = prometheus.NewDesc("guestagent_guest_agent_connected",
		"1 when the agent channel is connected.", []string{"domain_uuid", "agent"}, nil)
	descAgentResponsive = prometheus.NewDesc("guestagent_guest_agent_responsive",
		"1 when the agent answered recently.", []string{"domain_uuid", "agent"}, nil)
	descMemTotal = prometheus.NewDesc("guestagent_guest_memory_total_bytes",
		"Guest memory as the guest sees it.", []string{"domain_uuid"}, nil)
	descMemFree = prometheus.NewDesc("guestagent_guest_memory_free_bytes",
		"Free guest memory (free + buffers + cache).", []string{"domain_uuid"}, nil)
	descMemUnused = prometheus.NewDesc("guestagent_guest_memory_unused_bytes",
		"Strictly unused guest memory.", []string{"domain_uuid"}, nil)
	descMemUsable = prometheus.NewDesc("guestagent_guest_memory_usable_bytes",
		"Guest memory reclaimable without swapping (MemAvailable; libvirt balloon statistics).", []string{"domain_uuid"}, nil)
	descMemDiskCaches = prometheus.NewDesc("guestagent_guest_memory_disk_caches_bytes",
		"Guest page cache droppable without I/O (libvirt balloon statistics).", []string{"domain_uuid"}, nil)
	descMemBuffers = prometheus.NewDesc("guestagent_guest_memory_buffers_bytes",
		"Guest buffer memory (oVirt guest agent).", []string{"domain_uuid"}, nil)
	descMemCached = prometheus.NewDesc("guestagent_guest_memory_cached_bytes",
		"Guest page cache (oVirt guest agent).", []string{"domain_uuid"}, nil)
	descMemSwapTotal = prometheus.NewDesc("guestagent_guest_memory_swap_total_bytes",
		"Guest swap size (oVirt guest agent).", []string{"domain_uuid"}, nil)
	descMemSwapUsed = prometheus.NewDesc("guestagent_guest_memory_swap_used_bytes",
		"Guest swap in use (oVirt guest agent).", []string{"domain_uuid"}, nil)
	descMemBalloon = prometheus.NewDesc("guestagent_guest_memory_balloon_bytes",
		"Memory the balloon leaves to the guest (libvirt actual; the current memory without a balloon).", []string{"domain_uuid"}, nil)
	descMemHostRSS = prometheus.NewDesc("guestagent_guest_memory_host_rss_bytes",
		"Resident set size of the domain's QEMU process on the host (libvirt).", []string{"domain_uuid"}, nil)
	descMemSwapIn = prometheus.NewDesc("guestagent_guest_memory_swap_in_bytes_total",
		"Data read from swap since the guest booted (libvirt balloon statistics).", []string{"domain_uuid"}, nil)
	descMemSwapOut = prometheus.NewDesc("guestagent_guest_memory_swap_out_bytes_total",
		"Data written to swap since the guest booted (libvirt balloon statistics).", []string{"domain_uuid"}, nil)
	descMemMajorFaults = prometheus.NewDesc("guestagent_guest_memory_major_page_faults_total",
		"Page faults that needed I/O since the guest booted (libvirt balloon statistics).", []string{"domain_uuid"}, nil)
	descMemMinorFaults = prometheus.NewDesc("guestagent_guest_memory_minor_page_faults_total",
		"Page faults served without I/O since the guest booted (libvirt balloon statistics).", []string{"domain_uuid"}, nil)
	descMemUpdated = prometheus.NewDesc("guestagent_guest_memory_stats_updated_timestamp_seconds",
		"When the guest last refreshed its balloon statistics (guest clock; libvirt).", []string{"domain_uuid"}, nil)
	descMemRate = prometheus.NewDesc("guestagent_guest_memory_rate_per_second",
		"Per-second memory activity rates as the oVirt guest agent reports them.", []string{"domain_uuid", "kind"}, nil)
	descMemSource = prometheus.NewDesc("guestagent_guest_memory_source",
		"The source of the domain's memory figures (always 1).", []string{"domain_uuid", "source"}, nil)
	descFSTotal = prometheus.NewDesc("guestagent_guest_filesystem_size_bytes",
		"Filesystem size.", []string{"domain_uuid", "mountpoint", "fstype"}, nil)
	descFSUsed = prometheus.NewDesc("guestagent_guest_filesystem_used_bytes",
		"Filesystem space in use.", []string{"domain_uuid", "mountpoint", "fstype"}, nil)
	descVCPUs = prometheus.NewDesc("guestagent_guest_vcpus_online",
		"Online vCPUs as the guest sees them.", []string{"domain_uuid"}, nil)
	descUsers = prometheus.NewDesc("guestagent_guest_users",
		"Logged-in users.", []string{"domain_uuid"}, nil)
	descStale = prometheus.NewDesc("guestagent_guest_data_stale",
		"1 when some published guest data could not be refreshed.", []string{"domain_uuid"}, nil)
	descLibvirtConnected = prometheus.NewDesc("guestagent_agentd_libvirt_connected",
		"1 when agentd's connection to libvirt is up (the readiness check).", nil, nil)
	descDomains = prometheus.NewDesc("guestagent_agentd_domains",
		"Domains agentd knows on its node.", nil, nil)
)

// maxFilesystemSeries bounds the filesystem series per domain (a hostile guest cannot explode
// the scrape).
const maxFilesystemSeries = 64

type collector struct{ s *GuestAgentService }

// MustRegisterCollector registers the scrape-time collector of s's per-domain guest metrics and
// s's own counters.
func MustRegisterCollector(reg prometheus.Registerer, s *GuestAgentService) {
	reg.MustRegister(collector{s}, s.timeSyncs)
}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descAgentConnected, descAgentResponsive, descMemTotal, descMemFree,
		descMemUnused, descMemUsable, descMemDiskCaches, descMemBuffers, descMemCached, descMemSwapTotal, descMemSwapUsed,
		descMemBalloon, descMemHostRSS, descMemSwapIn, descMemSwapOut, descMemMajorFaults, descMemMinorFaults, descMemUpdated,
		descMemRate, descMemSource, descFSTotal, descFSUsed, descVCPUs, descUsers, descStale, descLibvirtConnected, descDomains} {
		ch <- d
	}
	describeStats(ch)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	domains := c.s.Domains()
	for _, uuid := range domains {
		if v, ok := c.s.View(uuid); ok {
			collectView(ch, uuid, v)
		}
		collectStats(ch, uuid, c.s.Stats(uuid))
	}
	ch <- prometheus.MustNewConstMetric(descLibvirtConnected, prometheus.GaugeValue, b2f(c.s.Ready()))
	ch <- prometheus.MustNewConstMetric(descDomains, prometheus.GaugeValue, float64(len(domains)))
}

// maxLabelBytes bounds label values taken from the guest (hostname, OS fields, mountpoints).
const maxLabelBytes = 128

// labelValue makes a guest string a safe label value: valid UTF-8 (strings from libvirt's typed
// API are passed through unsanitised, and an invalid label would fail the whole scrape), at most
// maxLabelBytes, cut at a character boundary.
func labelValue(s string) string {
	return guest.CutUTF8(strings.ToValidUTF8(s, "\uFFFD"), maxLabelBytes)
}

// collectView emits one domain's series.
func collectView(ch chan<- prometheus.Metric, uuid string, v View) {
	gauge := func(d *prometheus.Desc, val float64, labels ...string) {
		for i := range labels {
			labels[i] = labelValue(labels[i])
		}
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, val, append([]string{uuid}, labels...)...); err == nil {
			ch <- m
		}
	}
	info := v.Info
	var os guest.OS
	if info.OS != nil {
		os = *info.OS
	}
	host := ""
	if info.Hostname != nil {
		host = info.Hostname.Name
	}
	gauge(descInfo, 1, v.Domain.Name, string(os.Type), os.ID, os.VersionID, os.KernelRelease, os.Arch, host)
	if v.QGA.Present {
		gauge(descAgentConnected, b2f(v.QGA.Channel == guest.ChannelConnected), "QemuGuestAgent")
		gauge(descAgentResponsive, b2f(v.QGA.Responsive), "QemuGuestAgent")
	}
	if v.OGA.Present {
		gauge(descAgentConnected, b2f(v.OGA.Channel == guest.ChannelConnected), "OvirtGuestAgent")
		gauge(descAgentResponsive, b2f(v.OGA.Responsive), "OvirtGuestAgent")
	}
	if m := info.Memory; m != nil {
		collectMemory(ch, uuid, m, v.Sources[guest.GroupMemory])
	}
	if fs := info.Filesystems; fs != nil {
		seen := map[string]bool{} // by label value: two series with the same labels fail the scrape
		for _, f := range fs.List {
			mp := labelValue(f.Mountpoint)
			if len(seen) >= maxFilesystemSeries || !f.HasUsage || seen[mp] {
				continue
			}
			seen[mp] = true
			gauge(descFSTotal, float64(f.TotalBytes), mp, f.Type)
			gauge(descFSUsed, float64(f.UsedBytes), mp, f.Type)
		}
	}
	if info.VCPUs != nil {
		gauge(descVCPUs, float64(info.VCPUs.Online))
	}
	if info.Users != nil {
		gauge(descUsers, float64(len(info.Users.List)))
	}
	gauge(descStale, b2f(len(v.Stale) > 0))
}

// collectMemory emits one domain's memory series: sizes that were reported (0 = not reported),
// counters when the source has them, rates when the oVirt agent sent them.
func collectMemory(ch chan<- prometheus.Metric, uuid string, m *guest.Memory, src gav1.DataSource) {
	emit := func(d *prometheus.Desc, t prometheus.ValueType, val float64, labels ...string) {
		if mt, err := prometheus.NewConstMetric(d, t, val, append([]string{uuid}, labels...)...); err == nil {
			ch <- mt
		}
	}
	for _, g := range []struct {
		d *prometheus.Desc
		v uint64
	}{
		{descMemTotal, m.TotalBytes}, {descMemFree, m.FreeBytes}, {descMemUnused, m.UnusedBytes},
		{descMemUsable, m.UsableBytes}, {descMemDiskCaches, m.DiskCachesBytes}, {descMemBuffers, m.BuffersBytes},
		{descMemCached, m.CachedBytes}, {descMemSwapTotal, m.SwapTotalBytes}, {descMemSwapUsed, m.SwapUsedBytes},
		{descMemBalloon, m.BalloonBytes}, {descMemHostRSS, m.HostRSSBytes},
	} {
		if g.v > 0 {
			emit(g.d, prometheus.GaugeValue, float64(g.v))
		}
	}
	if m.HasCounters {
		emit(descMemSwapIn, prometheus.CounterValue, float64(m.SwapInBytes))
		emit(descMemSwapOut, prometheus.CounterValue, float64(m.SwapOutBytes))
		emit(descMemMajorFaults, prometheus.CounterValue, float64(m.MajorPageFaults))
		emit(descMemMinorFaults, prometheus.CounterValue, float64(m.MinorPageFaults))
	}
	if !m.StatsUpdated.IsZero() {
		emit(descMemUpdated, prometheus.GaugeValue, float64(m.StatsUpdated.Unix()))
	}
	if m.HasRates {
		emit(descMemRate, prometheus.GaugeValue, float64(m.SwapInRate), "swap_in")
		emit(descMemRate, prometheus.GaugeValue, float64(m.SwapOutRate), "swap_out")
		emit(descMemRate, prometheus.GaugeValue, float64(m.PageFaultRate), "page_faults")
		emit(descMemRate, prometheus.GaugeValue, float64(m.MajorPageFaultRate), "major_page_faults")
	}
	if src != "" {
		emit(descMemSource, prometheus.GaugeValue, 1, string(src))
	}
}
