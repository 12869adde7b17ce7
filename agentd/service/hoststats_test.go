package service

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
)

// pollerStats is the fake QGA side with the stats of a real poller.
type pollerStats struct {
	*servicefake.QGA
	p *qga.QemuGuestAgentPoller
}

func (a pollerStats) Stats(uuid string) *guest.Stats { return a.p.Stats(uuid) }

// TestHostQemuGAStatsReachTheMetrics: Debian's real qemu-ga (7.2: guest-get-cpustats and
// guest-get-diskstats on Linux) on a host socket, polled by the real poller, exported by the
// service's collector.
func TestHostQemuGAStatsReachTheMetrics(t *testing.T) {
	const bin = "/usr/sbin/qemu-ga"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s not installed", bin)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "qga.sock")
	cmd := exec.Command(bin, "-m", "unix-listen", "-p", sock, "-t", dir,
		"-b", "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-user-password,guest-exec,guest-file-open,guest-set-time")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	g := NewWithT(t)
	api := qga.NewSocketAPI(func(string) (string, bool) { return sock, true })
	t.Cleanup(func() { _ = api.Close() })
	dom := virt.Domain{UUID: testUUID, Name: "host", State: virt.StateRunning, HasQGAChannel: true, QGAChannel: guest.ChannelConnected}
	p, err := qga.NewQemuGuestAgentPoller(qga.Config{API: api, Log: testr.New(t), Tick: 100 * time.Millisecond, CallTimeout: 2 * time.Second,
		Domains: func() []virt.Domain { return []virt.Domain{dom} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	s, _ := runService(t, Options{Watcher: virt.NewFake(dom), QGA: pollerStats{servicefake.NewQGA(), p}})
	reg := prometheus.NewPedanticRegistry()
	MustRegisterCollector(reg, s)
	g.Eventually(func() (int, error) { return testutil.GatherAndCount(reg, "guestagent_guest_cpu_seconds_total") }).
		WithTimeout(15*time.Second).Should(BeNumerically(">=", 4), "user, nice, system, idle at least")
	g.Eventually(func() (int, error) { return testutil.GatherAndCount(reg, "guestagent_guest_disk_reads_total") }).
		WithTimeout(5 * time.Second).Should(BeNumerically(">=", 1))
	g.Expect(testutil.GatherAndCount(reg, "guestagent_guest_load")).To(Equal(0), "qemu-ga 7.2 has no guest-get-load")
	mfs, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() == "guestagent_guest_cpu_seconds_total" {
			for _, m := range mf.GetMetric() {
				g.Expect(m.GetCounter().GetValue()).To(BeNumerically(">=", 0))
			}
		}
	}
}
