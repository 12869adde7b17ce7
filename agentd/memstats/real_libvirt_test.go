package memstats

// Tests against a REAL libvirtd with TCG guests. They run only when GA_REAL_LIBVIRT=1; set the
// environment up with hack/test-real-libvirt.sh, or by hand:
//
//	hack/libvirt-env.sh && eval "$(hack/libvirt-env.sh env)"
//	go test -race -run Real -v ./agentd/memstats/
//
// The test boots its own guest (ga-mem) with a virtio balloon device without a statistics
// period, and removes it afterwards. Pre-booted guests named in GA_TEST_GUESTS (hack/guest.sh
// gives them no balloon device) are checked for the host-side figures.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/virt"
	"guestagent.io/operator/internal/hostcmd"
)

const realGuest = "ga-mem"

func virsh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := hostcmd.Output(exec.Command("virsh", append([]string{"-c", virt.DefaultURI}, args...)...))
	if err != nil {
		t.Fatalf("virsh %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestRealBalloonStatistics(t *testing.T) {
	if os.Getenv("GA_REAL_LIBVIRT") != "1" {
		t.Skip("GA_REAL_LIBVIRT=1 not set (hack/libvirt-env.sh sets up the real stack)")
	}
	g := NewWithT(t)
	guestSh := filepath.Join("..", "..", "hack", "guest.sh")
	down := func() { _ = exec.Command(guestSh, "down", realGuest).Run() }
	down()
	t.Cleanup(down)
	up := exec.Command(guestSh, "up", realGuest)
	up.Env = append(os.Environ(), "BALLOON=1")
	if out, err := hostcmd.Output(up); err != nil {
		t.Fatalf("booting %s: %v\n%s", realGuest, err, out)
	}
	g.Expect(virsh(t, "dumpxml", realGuest)).NotTo(ContainSubstring("<stats period"), "the guest starts without a period")

	log := testr.New(t)
	m := virt.NewManager(virt.Config{URI: virt.DefaultURI, Log: log.WithName("virt"), ResyncInterval: -1})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx, func(virt.Event) {}) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	g.Eventually(m.Synced).WithTimeout(30 * time.Second).Should(BeTrue())
	var d virt.Domain
	for _, x := range m.Domains() {
		if x.Name == realGuest {
			d = x
		}
	}
	g.Expect(d.UUID).NotTo(BeEmpty())
	g.Expect(d.Balloon).To(BeTrue())

	// The balloon driver sent one set of guest figures when it loaded; without a period they
	// are never refreshed, so a poller that leaves the domain alone reports the host side only.
	stats, err := m.MemoryStats(d.UUID)
	g.Expect(err).NotTo(HaveOccurred())
	boot := Translate(stats, time.Now())
	t.Logf("without a period: %+v", *boot)
	untouched, err := New(Config{API: m, Domains: m.Domains, StatsPeriod: 0, Log: log.WithName("untouched")})
	g.Expect(err).NotTo(HaveOccurred())
	untouched.Poll(ctx)
	host, fresh := untouched.Memory(d.UUID)
	g.Expect(fresh).To(BeTrue())
	g.Expect(host).NotTo(BeNil())
	g.Expect(host.HasGuestStats()).To(BeFalse(), "stale boot-time figures must not be reported: %+v", *host)
	g.Expect(host.BalloonBytes).To(BeNumerically(">", 0))
	g.Expect(host.HostRSSBytes).To(BeNumerically(">", 0))
	g.Expect(virsh(t, "dumpxml", realGuest)).NotTo(ContainSubstring("<stats period"), "statsPeriod 0 changes nothing")

	p, err := New(Config{API: m, Domains: m.Domains, StatsPeriod: 1, Log: log.WithName("memstats")})
	g.Expect(err).NotTo(HaveOccurred())

	// The poller enables the period (live only); QEMU then polls the guest's balloon driver.
	g.Eventually(func() bool {
		p.Poll(ctx)
		mem, fresh := p.Memory(d.UUID)
		return fresh && mem != nil && mem.TotalBytes > 0 && mem.UsableBytes > 0 && mem.UnusedBytes > 0 &&
			mem.BalloonBytes > 0 && mem.HostRSSBytes > 0 && mem.HasCounters && mem.MinorPageFaults > 0 &&
			mem.StatsUpdated.After(boot.StatsUpdated)
	}).WithTimeout(60*time.Second).WithPolling(time.Second).Should(BeTrue(), "refreshed guest-side balloon statistics")
	mem, _ := p.Memory(d.UUID)
	t.Logf("balloon statistics: %+v", *mem)
	g.Expect(mem.TotalBytes).To(BeNumerically("<=", mem.BalloonBytes), "the guest sees at most its balloon size")
	g.Expect(mem.UsableBytes).To(BeNumerically("<=", mem.TotalBytes))
	g.Expect(mem.StatsUpdated).To(BeTemporally("~", time.Now(), time.Hour))

	g.Expect(virsh(t, "dumpxml", realGuest)).To(ContainSubstring("<stats period='1'/>"), "the live definition has the period")
	g.Expect(virsh(t, "dumpxml", "--inactive", realGuest)).NotTo(ContainSubstring("<stats period"),
		"the persistent definition is left unchanged")

	// Pre-booted guests without a balloon device report the host-side figures only.
	for _, name := range strings.Split(os.Getenv("GA_TEST_GUESTS"), ",") {
		var u string
		for _, x := range m.Domains() {
			if x.Name == name && x.State == virt.StateRunning && !x.Balloon {
				u = x.UUID
			}
		}
		if u == "" {
			continue
		}
		p.Poll(ctx)
		host, fresh := p.Memory(u)
		g.Expect(fresh).To(BeTrue())
		g.Expect(host).NotTo(BeNil())
		g.Expect(host.BalloonBytes).To(BeNumerically(">", 0), "%s: the current memory stands in for actual", name)
		g.Expect(host.HostRSSBytes).To(BeNumerically(">", 0), name)
		g.Expect(host.HasGuestStats()).To(BeFalse(), "%s has no balloon device: %+v", name, *host)
		t.Logf("%s (no balloon device): %+v", name, *host)
	}
}
