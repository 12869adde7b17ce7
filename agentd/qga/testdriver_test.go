package qga

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/virt"
)

// writeTestNode writes a test:/// node file with n running domains that define a QGA channel.
func writeTestNode(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("<node><cpu><mhz>2000</mhz><model>i686</model><active>2</active><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>8388608</memory>\n")
	for k := 0; k < n; k++ {
		fmt.Fprintf(&b, `<domain type='test'><name>q%03d</name><uuid>0c0a0000-0000-4000-8000-%012d</uuid><memory>131072</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>
<devices><interface type='network'><source network='default'/><mac address='52:54:00:00:%02x:%02x'/></interface>
<channel type='unix'><source mode='bind' path='/run/t/%d.qga'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices></domain>
`, k, k, k>>8, k&0xff, k)
	}
	b.WriteString(`<network><name>default</name><bridge name='virbr0'/><forward/><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network></node>`)
	p := filepath.Join(t.TempDir(), "node.xml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

// The test driver implements neither GetGuestInfo nor QemuAgentCommand: both must come back as
// ErrUnsupported, while ListAllInterfaceAddresses(SRC_AGENT) returns its fake data.
func TestLibvirtAPITestDriverUnsupported(t *testing.T) {
	const n = 200
	m := virt.NewManager(virt.Config{URI: "test://" + writeTestNode(t, n), Log: testr.New(t), ResyncInterval: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx, func(virt.Event) {}); close(done) }()
	defer func() { cancel(); <-done }()
	NewWithT(t).Eventually(func() bool { return len(m.Domains()) == n }).WithTimeout(20*time.Second).Should(BeTrue(), "discovery")

	api := NewLibvirtAPI(m.LookupDomain)
	u := "0c0a0000-0000-4000-8000-000000000007"
	if _, err := api.Raw(ctx, u, CmdInfo, time.Second); ClassOf(err) != ErrUnsupported {
		t.Errorf("QemuAgentCommand on test driver: class %v (%v)", ClassOf(err), err)
	}
	for _, it := range []InfoType{InfoUsers, InfoOS, InfoTimezone, InfoHostname, InfoFilesystem, InfoDisks} {
		if _, err := api.GuestInfo(ctx, u, it, time.Second); ClassOf(err) != ErrUnsupported {
			t.Errorf("GetGuestInfo(%d): class %v (%v)", it, ClassOf(err), err)
		}
	}
	ifs, err := api.Interfaces(ctx, u, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nw := TranslateInterfaces(ifs)
	if len(nw.Interfaces) == 0 || len(nw.Interfaces[0].IPv4) == 0 || !strings.Contains(nw.Interfaces[0].IPv4[0], "/24") {
		t.Errorf("test driver interfaces = %+v", nw.Interfaces)
	}
	if _, err := api.Raw(ctx, "00000000-0000-4000-8000-ffffffffffff", CmdPing, time.Second); ClassOf(err) != ErrDomainNotRunning {
		t.Errorf("unknown domain: class %v (%v)", ClassOf(err), err)
	}

	// The poller over the test driver: every domain ends up with guest-info unsupported, no
	// typed call is ever made (caps unknown), and the failure throttle holds.
	var changes atomic.Int32
	clk := newFakeClock()
	p, err := NewQemuGuestAgentPoller(Config{API: api, Clock: clk, Log: testr.New(t), Tick: time.Hour, Workers: 4,
		Domains: func() []virt.Domain {
			ds := m.Domains()
			for k := range ds {
				ds[k].QGAChannel = guest.ChannelConnected // the test driver has no channel state
			}
			return ds
		}, OnChange: func(string) { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	pdone := make(chan struct{})
	go func() { _ = p.Run(pctx); close(pdone) }()
	defer func() { pcancel(); <-pdone }()
	NewWithT(t).Eventually(func() bool {
		for _, d := range m.Domains() {
			st, ok := p.State(d.UUID)
			if !ok || st.LastError == nil || st.LastError.Class != ErrUnsupported || st.LastError.Command != CmdInfo {
				return false
			}
		}
		return true
	}).WithTimeout(20*time.Second).Should(BeTrue(), "all domains report guest-info unsupported")
	if changes.Load() == 0 {
		t.Error("no change notification for the error state")
	}
	st, _ := p.State(u)
	if st.Responsive || st.Version != "" {
		t.Errorf("state = %+v", st)
	}
}
