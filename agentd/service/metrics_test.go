package service

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// viewCollector serves fixed views, as the service's collector serves its domains.
type viewCollector map[string]View

func (viewCollector) Describe(ch chan<- *prometheus.Desc) { collector{}.Describe(ch) }
func (c viewCollector) Collect(ch chan<- prometheus.Metric) {
	for uuid, v := range c {
		collectView(ch, uuid, v)
	}
}

// TestHostileLabelsKeepTheScrapeWorking: guest strings become label values. Invalid UTF-8 (the
// typed libvirt path passes guest strings through) and megabyte strings must neither fail the
// scrape nor blow it up, and mountpoints equal after shortening must not give duplicate series.
func TestHostileLabelsKeepTheScrapeWorking(t *testing.T) {
	long := strings.Repeat("é", 1<<19) // 1 MiB
	fs := &guest.Filesystems{}
	for i := range 200 {
		fs.List = append(fs.List, guest.Filesystem{Mountpoint: long + string(rune('a'+i%26)), Type: "ext4", HasUsage: true, TotalBytes: 10, UsedBytes: 1})
	}
	fs.List = append(fs.List, guest.Filesystem{Mountpoint: "/", Type: "ext4", HasUsage: true, TotalBytes: 10, UsedBytes: 1})
	hostile := View{
		Domain: virt.Domain{UUID: "u1", Name: "vm\xff1"},
		Info: &guest.Info{
			Hostname:    &guest.Hostname{Name: "host\xc3\x28name" + long},
			OS:          &guest.OS{ID: "deb\xffian", KernelRelease: long},
			Filesystems: fs,
		},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(viewCollector{"u1": hostile})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			series[mf.GetName()]++
			for _, l := range m.GetLabel() {
				checkLabel(t, mf, l)
			}
		}
	}
	// 200 long mountpoints shorten to one label value, plus "/"
	if series["guestagent_guest_filesystem_size_bytes"] != 2 || series["guestagent_guest_info"] != 1 {
		t.Fatalf("series %v", series)
	}
}

func checkLabel(t *testing.T, mf *dto.MetricFamily, l *dto.LabelPair) {
	t.Helper()
	v := l.GetValue()
	if !utf8.ValidString(v) || len(v) > maxLabelBytes {
		t.Errorf("%s{%s}: %d bytes, valid UTF-8 %v", mf.GetName(), l.GetName(), len(v), utf8.ValidString(v))
	}
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "",
		"/var":                               "/var",
		"a\xffb":                             "a\uFFFDb",
		strings.Repeat("x", 200):             strings.Repeat("x", maxLabelBytes),
		strings.Repeat("x", 127) + "é":       strings.Repeat("x", 127), // never half a character
		strings.Repeat("x", 126) + "é" + "z": strings.Repeat("x", 126) + "é",
	} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%.20q…) = %.20q… (%d bytes), want %d bytes", in, got, len(got), len(want))
		}
	}
}

// Memory series: every reported figure, counters as counters, and hostile values (a guest can
// report up to 2^64-1) do not fail the scrape.
func TestMemorySeries(t *testing.T) {
	v := View{
		Domain: virt.Domain{UUID: "u1", Name: "vm"},
		Info: &guest.Info{Memory: &guest.Memory{TotalBytes: 1 << 30, UsableBytes: 1<<64 - 1, BalloonBytes: 1 << 30,
			HostRSSBytes: 200 << 20, HasCounters: true, MinorPageFaults: 42, SwapInBytes: 0}},
		Sources: map[guest.Group]gav1.DataSource{guest.GroupMemory: gav1.SourceLibvirt},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(viewCollector{"u1": v})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	got := map[string]float64{}
	types := map[string]dto.MetricType{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			val := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" {
					name += "{" + l.GetValue() + "}"
				}
			}
			got[name], types[mf.GetName()] = val, mf.GetType()
		}
	}
	want := map[string]float64{
		"guestagent_guest_memory_total_bytes":             1 << 30,
		"guestagent_guest_memory_usable_bytes":            float64(uint64(1<<64 - 1)),
		"guestagent_guest_memory_balloon_bytes":           1 << 30,
		"guestagent_guest_memory_host_rss_bytes":          200 << 20,
		"guestagent_guest_memory_minor_page_faults_total": 42,
		"guestagent_guest_memory_swap_in_bytes_total":     0,
		"guestagent_guest_memory_source{Libvirt}":         1,
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	if _, ok := got["guestagent_guest_memory_free_bytes"]; ok {
		t.Error("an unreported figure must have no series")
	}
	if types["guestagent_guest_memory_minor_page_faults_total"] != dto.MetricType_COUNTER {
		t.Error("page faults must be a counter")
	}
}
