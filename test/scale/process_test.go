package scale

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// The process benchmarks run the real bin/agentd binary (make build) as its own process, with
// its default configuration, against the envtest control plane and one real qemu-ga per domain
// on a host socket (agentd's direct-socket mode: no libvirtd involved). agentd's CPU and memory
// are read from /proc/<pid>, so that nothing of the test process is included; request and write
// counts come from agentd's own /metrics.

// procResult is what one process run measured.
type procResult struct {
	n                   int
	objectsAt, idleAt   time.Duration // all N objects exist / publisher queue empty (since exec)
	window              time.Duration
	cpuPerMin           float64 // agentd's user+system CPU seconds per minute in the window
	startupCPU          float64 // CPU seconds until idle
	rssMin, rssMax, hwm int64   // VmRSS in the window, VmHWM at its end (startup included)
	threads             int
	statusWritesPerMin  float64
	requestsPerMin      float64 // every API request agentd's client sent (rest_client_requests_total)
	startupRequests     float64 // API requests until idle
	startupReqPerSec    float64
	qgaOKPerMin         float64
	qgaFailedPerMin     float64
	loadStart, loadEnd  string
}

// agentdBinary is the binary under test; GA_SCALE_AGENTD overrides it.
func agentdBinary(t testing.TB) string {
	p := os.Getenv("GA_SCALE_AGENTD")
	if p == "" {
		p = filepath.Join(testenv.RepoRoot(), "bin", "agentd")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run make build first)", p, err)
	}
	return p
}

// kubeconfig writes a kubeconfig of an admin user of the shared control plane.
func kubeconfig(t testing.TB) string {
	p, err := env.WriteKubeconfig(t.TempDir(), "scale-agentd")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freePort returns a free local TCP address.
func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// scrape sums the samples of metric name on agentd's /metrics whose label set contains every
// one of the given `key="value"` pairs.
func scrape(t testing.TB, addr, name string, match ...string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping agentd: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	return sumSamples(resp.Body, name, match...)
}

func sumSamples(r io.Reader, name string, match ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || len(line) == len(name) {
			continue
		}
		rest := line[len(name):]
		if rest[0] != '{' && rest[0] != ' ' {
			continue // another metric with this prefix
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(rest, m)
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// procCPU returns the user+system CPU time of pid.
func procCPU(t testing.TB, pid int) time.Duration {
	_, ticks, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// runProcess starts n qemu-ga agents and bin/agentd, waits for the startup, then measures a
// steady-state window.
func runProcess(t testing.TB, o options, n int) procResult {
	fleet := startQemuGAFleet(t, n)
	defer fleet.stop()
	cfgPath := writeSocketConfig(t, fleet, n)
	metricsAddr := freePort(t)
	logf, err := os.Create(filepath.Join(t.TempDir(), "agentd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logf.Close() }()
	args := []string{"--config", cfgPath, "--node-name", nodeName,
		"--default-namespace", defaultNS, "--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", freePort(t)}
	pprofAddr := ""
	if o.profile != "" || o.heapProfile != "" {
		pprofAddr = freePort(t)
		args = append(args, "--pprof-bind-address", pprofAddr)
	}
	if v := os.Getenv("GA_SCALE_AGENTD_ARGS"); v != "" { // e.g. --poll-workers=16
		args = append(args, strings.Fields(v)...)
	}
	cmd := exec.Command(agentdBinary(t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig(t))
	if v := os.Getenv("GA_SCALE_AGENTD_ENV"); v != "" { // e.g. GOMAXPROCS=1,GOMEMLIMIT=100MiB
		cmd.Env = append(cmd.Env, strings.Split(v, ",")...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		bg := context.Background()
		_ = env.Client.DeleteAllOf(bg, &gav1.GuestAgentStatus{}, client.InNamespace(defaultNS))
	}()
	alive := func() {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Fatalf("agentd exited: %v\n%s", err, b)
		default:
		}
	}

	res := procResult{n: n, window: o.window}
	objs := &metav1.PartialObjectMetadataList{}
	objs.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatusList"))
	deadline := start.Add(time.Duration(n)*time.Second + 5*time.Minute)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for res.idleAt == 0 {
		<-tick.C
		alive()
		if time.Now().After(deadline) {
			t.Fatalf("startup of %d domains did not finish: %d objects", n, len(objs.Items))
		}
		if err := env.Client.List(context.Background(), objs, client.InNamespace(defaultNS)); err != nil {
			continue
		}
		if len(objs.Items) < n {
			continue
		}
		if res.objectsAt == 0 {
			res.objectsAt = time.Since(start)
		}
		if scrape(t, metricsAddr, "guestagent_agentd_publish_queue_depth") == 0 {
			res.idleAt = time.Since(start)
		}
	}
	res.startupCPU = procCPU(t, pid).Seconds()
	res.startupRequests = scrape(t, metricsAddr, "rest_client_requests_total")
	res.startupReqPerSec = res.startupRequests / res.idleAt.Seconds()

	if wait := o.settle - time.Since(start); wait > 0 {
		time.Sleep(wait) // not synchronisation: the measured window starts after the settle time
	}
	type snap struct {
		at                   time.Time
		cpu                  time.Duration
		writes, reqs, ok, ko float64
	}
	take := func() snap {
		alive()
		calls := scrape(t, metricsAddr, "guestagent_agentd_qga_call_duration_seconds_count")
		errs := scrape(t, metricsAddr, "guestagent_agentd_qga_call_errors_total")
		return snap{at: time.Now(), cpu: procCPU(t, pid), writes: scrape(t, metricsAddr, "guestagent_agentd_status_writes_total"),
			reqs: scrape(t, metricsAddr, "rest_client_requests_total"), ok: calls - errs, ko: errs}
	}
	res.loadStart = loadAvg()
	s0 := take()
	profiled := make(chan struct{})
	if o.profile != "" { // agentd's own CPU profile over the window
		go func() {
			defer close(profiled)
			fetchProfile(t, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(o.window.Seconds())), o.profile)
		}()
	} else {
		close(profiled)
	}
	res.rssMin = 1 << 62
	sample := time.NewTicker(5 * time.Second)
	defer sample.Stop()
	for end := s0.at.Add(o.window); time.Now().Before(end); {
		rss := procKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS") << 10
		res.rssMin, res.rssMax = min(res.rssMin, rss), max(res.rssMax, rss)
		<-sample.C
	}
	s1 := take()
	res.loadEnd = loadAvg()
	<-profiled
	if o.heapProfile != "" {
		fetchProfile(t, "http://"+pprofAddr+"/debug/pprof/heap", o.heapProfile)
	}
	res.hwm = procKB(fmt.Sprintf("/proc/%d/status", pid), "VmHWM") << 10
	res.threads = int(procKB(fmt.Sprintf("/proc/%d/status", pid), "Threads"))
	perMin := func(d float64) float64 { return d / s1.at.Sub(s0.at).Minutes() }
	res.cpuPerMin = perMin((s1.cpu - s0.cpu).Seconds())
	res.statusWritesPerMin = perMin(s1.writes - s0.writes)
	res.requestsPerMin = perMin(s1.reqs - s0.reqs)
	res.qgaOKPerMin = perMin(s1.ok - s0.ok)
	res.qgaFailedPerMin = perMin(s1.ko - s0.ko)
	if res.statusWritesPerMin != 0 {
		t.Errorf("%d domains: %.1f status writes/min in steady state with nothing changing", n, res.statusWritesPerMin)
	}
	return res
}

// fetchProfile saves the profile served at url (agentd's --pprof-bind-address) to path.
func fetchProfile(t testing.TB, url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("profile %s: %v", url, err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %.200s", resp.Status, b)
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		t.Errorf("profile %s: %v", url, err)
	}
}

func benchProcess(b *testing.B, n int) {
	if env == nil {
		b.Skip("set GA_SCALE=1 to run the scale benchmark")
	}
	o := loadOptions(b)
	var r procResult
	for i := 0; i < b.N; i++ {
		r = runProcess(b, o, n)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.cpuPerMin, "cpu-s/min")
	b.ReportMetric(mib(r.rssMax), "rss-MiB")
	b.ReportMetric(mib(r.hwm), "hwm-MiB")
	b.ReportMetric(r.objectsAt.Seconds(), "objects-s")
	b.ReportMetric(r.idleAt.Seconds(), "startup-s")
	b.ReportMetric(r.startupCPU, "startup-cpu-s")
	b.ReportMetric(r.startupReqPerSec, "startup-req/s")
	b.ReportMetric(r.requestsPerMin, "api-req/min")
	b.ReportMetric(r.statusWritesPerMin, "status-writes/min")
	b.ReportMetric(r.qgaOKPerMin, "qga-ok-calls/min")
	b.ReportMetric(r.qgaFailedPerMin, "qga-failed-calls/min")
	b.Logf("agentd process, %d domains: %d threads; startup %.0f API requests; RSS %.0f–%.0f MiB; load average %s at the window's start, %s at its end",
		n, r.threads, r.startupRequests, mib(r.rssMin), mib(r.rssMax), r.loadStart, r.loadEnd)
}

// BenchmarkAgentdProcess100 is bin/agentd with 100 real qemu-ga agents on host sockets.
func BenchmarkAgentdProcess100(b *testing.B) { benchProcess(b, 100) }

// BenchmarkAgentdProcess1000 is bin/agentd with 1,000 real qemu-ga agents on host sockets.
func BenchmarkAgentdProcess1000(b *testing.B) { benchProcess(b, 1000) }

// writeSocketConfig writes agentd's configuration for the fleet: libvirt off, every agent a
// configured socket domain (qgaSockets.domains), everything else at its default.
func writeSocketConfig(t testing.TB, fleet *qemuGAFleet, n int) string {
	var b strings.Builder
	b.WriteString("libvirtURI: \"\"\nenableOvirtAgent: false\nqgaSockets:\n  domains:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: %s\n    uuid: %s\n    socket: %s\n", domainName(i), domainUUID(i), fleet.sock(i))
	}
	p := filepath.Join(t.TempDir(), "agentd.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func domainName(i int) string { return fmt.Sprintf("scale-%05d", i) }
