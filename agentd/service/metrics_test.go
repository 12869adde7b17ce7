package service

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
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
