package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"guestagent.io/operator/agentd/oga/ogafake"
	"guestagent.io/operator/agentd/service/servicefake"
)

// TestMetricsAtScrapeTime: per-domain guest gauges and agentd's own counters are exported, and a
// domain's series go away with the domain.
func TestMetricsAtScrapeTime(t *testing.T) {
	_, sock := ogaGuest(t, ogafake.Config{}, nil)
	d := withOGA(withQGA(domain("cccccccc-0000-4000-8000-000000000001", "metered")), sock)
	q := servicefake.NewQGA()
	q.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
	n := startNode(t, "node-a", q, d)
	ctx := context.Background()
	NewWithT(t).Eventually(func() error { _, err := getGAS(ctx, defaultNS, d.UUID); return err }).WithTimeout(20 * time.Second).Should(Succeed())

	want := []string{
		`guestagent_guest_info{arch="x86_64",domain="metered",domain_uuid="` + d.UUID + `",hostname="guest.example.com"`,
		`guestagent_guest_agent_connected{agent="QemuGuestAgent",domain_uuid="` + d.UUID + `"} 1`,
		`guestagent_guest_agent_connected{agent="OvirtGuestAgent",domain_uuid="` + d.UUID + `"} 1`,
		`guestagent_guest_memory_total_bytes{domain_uuid="` + d.UUID + `"}`,
		`guestagent_guest_filesystem_size_bytes{domain_uuid="` + d.UUID + `",fstype="ext4",mountpoint="/"}`,
		`guestagent_agentd_oga_messages_total{domain_uuid="` + d.UUID + `"}`,
		`guestagent_agentd_oga_api_version{domain_uuid="` + d.UUID + `"} 3`,
		`guestagent_agentd_status_writes_total{result="success"}`,
		"guestagent_agentd_libvirt_connected{} 1",
		"guestagent_agentd_domains{} 1",
		"guestagent_agentd_publish_held_for_api{} 0",
	}
	NewWithT(t).Eventually(func() error {
		text, err := scrape(n)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				return fmt.Errorf("missing %s", w)
			}
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
	n.watcher.SetConnected(false)
	NewWithT(t).Eventually(func() error { return scraped(n, "guestagent_agentd_libvirt_connected{} 0") }).WithTimeout(20 * time.Second).Should(Succeed())
	n.watcher.SetConnected(true)
	n.watcher.Remove(d.UUID, 0)
	NewWithT(t).Eventually(func() error {
		text, err := scrape(n)
		if err != nil {
			return err
		}
		if strings.Contains(text, d.UUID) {
			return fmt.Errorf("series of a removed domain remain")
		}
		return scraped(n, "guestagent_agentd_domains{} 0")
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// scraped checks that n's metrics contain want.
func scraped(n *node, want string) error {
	text, err := scrape(n)
	if err == nil && !strings.Contains(text, want) {
		err = fmt.Errorf("missing %s", want)
	}
	return err
}

func scrape(n *node) (string, error) {
	mfs, err := n.reg.Gather()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			fmt.Fprintf(&b, "%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	return b.String(), nil
}
