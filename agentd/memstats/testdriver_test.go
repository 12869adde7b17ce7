package memstats

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/virt"
)

// libvirt's test:///default driver runs one domain ("test", 2 GiB, a virtio balloon device)
// and implements virDomainMemoryStats and virDomainSetMemoryStatsPeriod with fixed figures:
// the whole path from the Manager through the Poller to the guest model, without QEMU.
func TestTestDriverMemoryStats(t *testing.T) {
	g := NewWithT(t)
	m := virt.NewManager(virt.Config{URI: "test:///default", Log: testr.New(t).WithName("virt"), ResyncInterval: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, func(virt.Event) {}) }()
	t.Cleanup(func() {
		cancel()
		g.Expect(<-done).To(Succeed())
	})
	g.Eventually(m.Synced).WithTimeout(10 * time.Second).Should(BeTrue())
	var d virt.Domain
	for _, x := range m.Domains() {
		if x.Name == "test" {
			d = x
		}
	}
	g.Expect(d.UUID).NotTo(BeEmpty())
	g.Expect(d.Balloon).To(BeTrue(), "the test domain has a virtio balloon")
	g.Expect(d.BalloonStatsPeriod).To(BeZero())

	// The Manager itself.
	stats, err := m.MemoryStats(d.UUID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stats).To(ContainElement(virt.MemoryStat{Tag: virt.MemStatActualBalloon, Value: 2097152}))
	g.Expect(m.MemoryStats("00000000-0000-4000-8000-00000000dead")).Error().To(HaveOccurred())

	calls := &recordingAPI{Hypervisor: m}
	p, err := New(Config{API: calls, Domains: m.Domains, StatsPeriod: 7, Log: testr.New(t)})
	g.Expect(err).NotTo(HaveOccurred())
	p.Poll(ctx)
	mem, fresh := p.Memory(d.UUID)
	g.Expect(fresh).To(BeTrue())
	g.Expect(mem).NotTo(BeNil())
	// test:///default's figures (KiB): actual 2097152, available 2097152, unused 1048576,
	// usable 1048576, disk_caches 262144, rss 1048576.
	g.Expect(mem.BalloonBytes).To(Equal(uint64(2097152 * 1024)))
	g.Expect(mem.TotalBytes).To(Equal(uint64(2097152 * 1024)))
	g.Expect(mem.UsableBytes).To(Equal(uint64(1048576 * 1024)))
	g.Expect(mem.DiskCachesBytes).To(Equal(uint64(262144 * 1024)))
	g.Expect(mem.HostRSSBytes).To(Equal(uint64(1048576 * 1024)))
	g.Expect(mem.HasCounters).To(BeTrue())
	g.Expect(mem.HasGuestStats()).To(BeTrue())
	g.Expect(calls.periods).To(Equal([]int{7}), "the period is enabled on a balloon without one")
}

type recordingAPI struct {
	Hypervisor
	periods []int
}

func (r *recordingAPI) SetMemoryStatsPeriod(uuid string, s int) error {
	r.periods = append(r.periods, s)
	return r.Hypervisor.SetMemoryStatsPeriod(uuid, s)
}
