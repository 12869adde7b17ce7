package virt

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// DomainVCPUs reads the plugged-in and maximum vCPUs of a running domain (libvirt's test
// driver honours <vcpu current=…>).
func TestDomainVCPUsTestDriver(t *testing.T) {
	const uuid = "6a1e0000-0000-4000-8000-0000000000c1"
	node := `<node><cpu><mhz>2000</mhz><model>i686</model><active>8</active><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads></cpu><memory>8388608</memory>
<domain type='test'><name>vcpus</name><uuid>` + uuid + `</uuid><memory>131072</memory><vcpu current='2'>6</vcpu><os><type arch='x86_64'>hvm</type></os></domain>
</node>`
	p := filepath.Join(t.TempDir(), "node.xml")
	if err := os.WriteFile(p, []byte(node), 0o600); err != nil {
		t.Fatal(err)
	}
	m, _ := startManager(t, "test://"+p)
	NewWithT(t).Eventually(func() bool { _, ok := m.Domain(uuid); return ok }).WithTimeout(10 * time.Second).Should(BeTrue())
	cur, most, err := DomainVCPUs{M: m}.VCPUs(context.Background(), uuid)
	if err != nil || cur != 2 || most != 6 {
		t.Fatalf("VCPUs = %d, %d, %v; want 2, 6", cur, most, err)
	}
	if _, _, err := (DomainVCPUs{M: m}).VCPUs(context.Background(), "6a1e0000-0000-4000-8000-0000000000ff"); err == nil {
		t.Fatal("VCPUs of an unknown domain: want an error")
	}
}
