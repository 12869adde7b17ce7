package clustersim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/controllers"
	"guestagent.io/operator/internal/cachetrim"
	"guestagent.io/operator/internal/testenv"
)

const ns = "guestagent-system"

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("%s=%q: %v", name, v, err)
		}
		return n
	}
	return def
}

func envFloat(b *testing.B, name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatalf("%s=%q: %v", name, v, err)
		}
		return f
	}
	return def
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("%s=%q: %v", name, v, err)
		}
		return d
	}
	return def
}

// BenchmarkCluster simulates GA_CLUSTER_NODES nodes (default 100) of GA_CLUSTER_DOMAINS domains
// (default 100) on envtest, runs the real manager binary against it and reports the manager's
// memory, CPU and startup time, command latency under the nodes' status changes, and the API
// request rates of all simulated agentds at steady state. Run one size per process (VmHWM is the
// process's own peak either way, but the API server's memory is not).
func BenchmarkCluster(b *testing.B) {
	if os.Getenv("GA_CLUSTER") != "1" {
		b.Skip("cluster simulation: set GA_CLUSTER=1 (minutes; see docs/benchmarks.md)")
	}
	nodes := envInt(b, "GA_CLUSTER_NODES", 100)
	domains := envInt(b, "GA_CLUSTER_DOMAINS", 100)
	b.Run(fmt.Sprintf("nodes=%d,domains=%d", nodes, domains), func(b *testing.B) {
		for range b.N {
			runCluster(b, nodes, domains)
		}
	})
}

func runCluster(b *testing.B, nodes, domains int) {
	window := envDuration(b, "GA_CLUSTER_WINDOW", 2*time.Minute)
	settle := envDuration(b, "GA_CLUSTER_SETTLE", 15*time.Second)
	changePct := envFloat(b, "GA_CLUSTER_CHANGES", 3) // % of a node's domains changing per minute
	cmdEvery := envDuration(b, "GA_CLUSTER_COMMAND_EVERY", time.Second)
	compare := os.Getenv("GA_CLUSTER_CACHE_COMPARE") != "0"

	ctrl.SetLogger(logr.Discard())
	mgrBin := buildManager(b)
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	for i := range nodes {
		if err := c.Create(ctx, testenv.Node(nodeName(i))); err != nil {
			b.Fatal(err)
		}
	}

	// The simulated nodes publish their domains' first statuses.
	counter := newRequestCounter()
	exec := newExecRecorder()
	nodeCtx, stopNodes := context.WithCancel(ctx)
	defer stopNodes()
	sims := make([]*simNode, nodes)
	start := time.Now()
	for i := range nodes {
		sims[i], err = startSimNode(nodeCtx, env.Config, env.Scheme, nodeName(i), ns, domains, counter, exec, uint64(i+1))
		if err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, 60*time.Minute, "the first statuses", func() bool {
		for _, n := range sims {
			if !n.idle() {
				return false
			}
		}
		return true
	})
	firstPublish := time.Since(start)
	b.Logf("%d statuses published in %s", nodes*domains, firstPublish.Round(time.Millisecond))
	statusBytes := objectBytes(ctx, b, c, sims[0].domains[0].object)

	for _, n := range sims {
		go n.changeLoop(nodeCtx, changePct/100*float64(domains))
	}

	// The manager starts with the statuses in place; a command created before it starts is
	// scheduled once its caches are synced and it leads.
	probe := sims[0].domains[0]
	probeArrived := exec.expect(probe.uuid)
	probeCmd := newCommand("probe", probe.object)
	if err := c.Create(ctx, probeCmd); err != nil {
		b.Fatal(err)
	}
	mgr := startManager(b, env, mgrBin)
	defer mgr.stop(b)
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	scheduled := waitScheduled(ctx, b, wc, probeCmd.Name, 10*time.Minute)
	startup := scheduled.Sub(mgr.started)
	var firstExec time.Duration
	select {
	case at := <-probeArrived:
		firstExec = at.Sub(mgr.started)
	case <-time.After(time.Minute):
		b.Fatal("the probe command was never executed")
	}
	synced := mgr.logTime(b, "Starting workers", `"controller":"guestagentcommand"`)
	b.Logf("manager: readyz after %s, caches synced (workers started) after %s, probe scheduled after %s, executed after %s",
		mgr.readyAfter, synced, startup, firstExec)
	startupStat, _ := readProc(mgr.cmd.Process.Pid)

	// Steady state: changes go on; one command at a time per target, one every cmdEvery.
	settleT := time.NewTimer(settle)
	<-settleT.C
	before, resBefore := counter.snapshot()
	mgrBefore, _ := readProc(mgr.cmd.Process.Pid)
	mgrReqBefore := mgr.requests(b)
	changesBefore := totalChanges(sims)
	var (
		latMu   sync.Mutex
		lat     []time.Duration
		lost    int
		wg      sync.WaitGroup
		maxRSS  int64
		samples int
	)
	windowStart := time.Now()
	ticker := time.NewTicker(cmdEvery)
	rssTicker := time.NewTicker(time.Second)
	end := time.NewTimer(window)
	seq := 0
loop:
	for {
		select {
		case <-end.C:
			break loop
		case <-rssTicker.C:
			if s, err := readProc(mgr.cmd.Process.Pid); err == nil {
				maxRSS = max(maxRSS, s.rssKiB)
				samples++
			}
		case <-ticker.C:
			seq++
			n := sims[seq%nodes]
			sd := n.domains[(seq/nodes+1)%domains]
			wg.Add(1)
			go func(seq int) {
				defer wg.Done()
				arrived := exec.expect(sd.uuid)
				cmd := newCommand(fmt.Sprintf("lat-%d", seq), sd.object)
				created := time.Now()
				if err := c.Create(ctx, cmd); err != nil {
					b.Error(err)
					exec.forget(sd.uuid)
					return
				}
				select {
				case at := <-arrived:
					latMu.Lock()
					lat = append(lat, at.Sub(created))
					latMu.Unlock()
				case <-time.After(2 * time.Minute):
					exec.forget(sd.uuid)
					latMu.Lock()
					lost++
					latMu.Unlock()
				}
			}(seq)
		}
	}
	ticker.Stop()
	rssTicker.Stop()
	elapsed := time.Since(windowStart)
	after, byRes := counter.snapshot()
	mgrAfter, _ := readProc(mgr.cmd.Process.Pid)
	mgrReqAfter := mgr.requests(b)
	changes := totalChanges(sims) - changesBefore
	wg.Wait()
	apiserver, etcd := childByName("kube-apiserver"), childByName("etcd")
	apiStat, _ := readProc(apiserver)
	etcdStat, _ := readProc(etcd)

	perMin := func(n int64) float64 { return float64(n) / elapsed.Minutes() }
	var total int64
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	for _, v := range verbs {
		total += after[v] - before[v]
	}
	for v := range after {
		if !slices.Contains(verbs, v) {
			total += after[v] - before[v]
		}
	}
	var mgrTotal float64
	for _, v := range mgrReqAfter {
		mgrTotal += v
	}
	for _, v := range mgrReqBefore {
		mgrTotal -= v
	}
	mib := func(kib int64) float64 { return float64(kib) / 1024 }

	b.ReportMetric(mib(mgrAfter.rssKiB), "mgr-rss-MiB")
	b.ReportMetric(mib(max(mgrAfter.hwmKiB, maxRSS)), "mgr-hwm-MiB")
	b.ReportMetric(float64(mgrAfter.cpuTicks-mgrBefore.cpuTicks)/clockTicks/elapsed.Minutes(), "mgr-cpu-s/min")
	b.ReportMetric(float64(startupStat.cpuTicks)/clockTicks, "mgr-startup-cpu-s")
	b.ReportMetric(synced.Seconds(), "mgr-synced-s")
	b.ReportMetric(startup.Seconds(), "mgr-first-sched-s")
	b.ReportMetric(mgrTotal/elapsed.Minutes(), "mgr-req/min")
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
		b.ReportMetric(pct(0.50), "cmd-p50-ms")
		b.ReportMetric(pct(0.99), "cmd-p99-ms")
		slow := 0
		for _, l := range lat {
			if l > time.Second {
				slow++
			}
		}
		b.ReportMetric(float64(slow), "cmd-over-1s")
		b.Logf("slowest commands: %v", lat[max(0, len(lat)-5):])
	}
	b.ReportMetric(float64(len(lat)), "commands")
	b.ReportMetric(float64(lost), "cmd-lost")
	b.ReportMetric(perMin(changes), "changes/min")
	b.ReportMetric(perMin(total), "agentd-req/min")
	for _, v := range verbs {
		b.ReportMetric(perMin(after[v]-before[v]), "agentd-"+v+"/min")
	}
	b.ReportMetric(firstPublish.Seconds(), "first-publish-s")
	b.ReportMetric(float64(statusBytes), "status-bytes")
	b.ReportMetric(mib(apiStat.rssKiB), "apiserver-rss-MiB")
	b.ReportMetric(mib(etcdStat.rssKiB), "etcd-rss-MiB")
	b.ReportMetric(0, "ns/op")

	var res []string
	for k, v := range byRes {
		if d := v - resBefore[k]; d > 0 {
			res = append(res, fmt.Sprintf("%s %.1f/min", k, perMin(d)))
		}
	}
	sort.Strings(res)
	b.Logf("agentd requests in the window by verb and resource (all nodes): %s", strings.Join(res, ", "))
	b.Logf("manager requests in the window by method: before %v after %v", mgrReqBefore, mgrReqAfter)
	b.Logf("window %s: %d commands, %d lost, %d status changes; manager RSS samples %d, max %.1f MiB",
		elapsed.Round(time.Second), len(lat), lost, changes, samples, mib(maxRSS))

	if compare {
		full, trimmed := compareCaches(ctx, b, env.Config)
		b.ReportMetric(full, "gas-cache-full-MiB")
		b.ReportMetric(trimmed, "gas-cache-trimmed-MiB")
	}
	stopNodes()
}

func totalChanges(sims []*simNode) int64 {
	var n int64
	for _, s := range sims {
		n += s.changes.Load()
	}
	return n
}

func nodeName(i int) string { return fmt.Sprintf("sim-%03d", i) }

func newCommand(name, target string) *gav1.GuestAgentCommand {
	return &gav1.GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       gav1.GuestAgentCommandSpec{Target: target, Action: gav1.ActionPing},
	}
}

// waitFor polls cond (a measurement's end condition, in memory) every 200 ms until it holds.
func waitFor(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitScheduled watches the command until the controller scheduled it and returns when the
// watch event arrived.
func waitScheduled(ctx context.Context, b *testing.B, c client.WithWatch, name string, timeout time.Duration) time.Time {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w, err := c.Watch(ctx, &gav1.GuestAgentCommandList{}, client.InNamespace(ns),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", name)})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if cmd, ok := ev.Object.(*gav1.GuestAgentCommand); ok && cmd.Status.Phase != "" && cmd.Status.Phase != gav1.PhasePending {
			return time.Now()
		}
	}
	b.Fatalf("command %s was not scheduled within %s", name, timeout)
	return time.Time{}
}

// objectBytes is the JSON size of one GuestAgentStatus as the API serves it (with managedFields).
func objectBytes(ctx context.Context, b *testing.B, c client.Client, name string) int {
	gas := &gav1.GuestAgentStatus{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, gas); err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(gas)
	b.Logf("one GuestAgentStatus: %d bytes of JSON (%d applications, %d interfaces, %d filesystems, %d executed commands)",
		len(raw), len(gas.Status.Applications), len(gas.Status.Interfaces), len(gas.Status.Filesystems), len(gas.Status.ExecutedCommands))
	return len(raw)
}

// compareCaches measures the heap a GuestAgentStatus informer takes in this process, with the
// transform the manager uses and with managedFields stripped only (full objects), in MiB.
func compareCaches(ctx context.Context, b *testing.B, cfg *rest.Config) (full, trimmed float64) {
	full = cacheHeap(ctx, b, cfg, cache.TransformStripManagedFields())
	trimmed = cacheHeap(ctx, b, cfg, cachetrim.ControllerStatus())
	if got := controllers.CacheOptions().ByObject; len(got) == 0 {
		b.Fatal("the manager's cache options have no per-object transforms")
	}
	return full, trimmed
}

func cacheHeap(ctx context.Context, b *testing.B, cfg *rest.Config, tr func(any) (any, error)) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := cache.New(cfg, cache.Options{Scheme: testenv.Scheme(), ByObject: map[client.Object]cache.ByObject{
		&gav1.GuestAgentStatus{}: {Transform: tr},
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	defer func() { cancel(); <-stopped }()
	go func() { defer close(stopped); _ = c.Start(ctx) }()
	if _, err := c.GetInformer(ctx, &gav1.GuestAgentStatus{}); err != nil {
		b.Fatal(err)
	}
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("cache did not sync")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
}

// buildManager builds ./cmd/manager into a temporary directory, unless GA_CLUSTER_MANAGER_BIN
// names a binary to measure instead (e.g. another version of the manager).
func buildManager(b *testing.B) string {
	if bin := os.Getenv("GA_CLUSTER_MANAGER_BIN"); bin != "" {
		return bin
	}
	out := filepath.Join(b.TempDir(), "manager")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/manager")
	cmd.Dir = testenv.RepoRoot()
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the manager: %v\n%s", err, msg)
	}
	return out
}

// managerProc is the manager binary running against envtest.
type managerProc struct {
	cmd         *exec.Cmd
	started     time.Time
	readyAfter  time.Duration
	log         string
	metricsAddr string
	done        chan struct{}
}

func freePort(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startManager writes a kubeconfig for an admin user of envtest and starts the manager with the
// flags of the chart's Deployment (leader election on, health probes and plain-HTTP metrics on
// free local ports), then measures when /readyz first answers 200.
func startManager(b *testing.B, env *testenv.Env, bin string) *managerProc {
	dir := b.TempDir()
	user, err := env.Env.AddUser(envtest.User{Name: "manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		b.Fatal(err)
	}
	probe, metrics := freePort(b), freePort(b)
	m := &managerProc{log: filepath.Join(dir, "manager.log"), metricsAddr: metrics, done: make(chan struct{})}
	logf, err := os.Create(m.log)
	if err != nil {
		b.Fatal(err)
	}
	m.cmd = exec.Command(bin, "--leader-elect", "--leader-election-namespace="+ns,
		"--health-probe-bind-address="+probe, "--metrics-bind-address="+metrics, "--metrics-secure=false",
		"--zap-time-encoding=rfc3339nano") // log timestamps precise enough to time the startup
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kcPath)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = m.cmd.Wait(); logf.Close(); close(m.done) }()
	hc := &http.Client{Timeout: time.Second}
	waitFor(b, 5*time.Minute, "the manager's /readyz", func() bool {
		select {
		case <-m.done:
			b.Fatalf("the manager exited:\n%s", m.tail())
		default:
		}
		resp, err := hc.Get("http://" + probe + "/readyz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	m.readyAfter = time.Since(m.started)
	return m
}

func (m *managerProc) tail() string {
	raw, _ := os.ReadFile(m.log)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// logTime returns the time after the process start of the first log line holding every part
// (zap's JSON "ts" field, RFC 3339 with nanoseconds).
func (m *managerProc) logTime(b *testing.B, parts ...string) time.Duration {
	f, err := os.Open(m.log)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if !ok {
			continue
		}
		var rec struct {
			TS time.Time `json:"ts"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.TS.IsZero() {
			continue
		}
		return rec.TS.Sub(m.started)
	}
	b.Logf("no manager log line with %q", parts)
	return 0
}

// requests returns the manager's API requests so far by HTTP method (its client metrics).
func (m *managerProc) requests(b *testing.B) map[string]float64 {
	resp, err := http.Get("http://" + m.metricsAddr + "/metrics")
	if err != nil {
		b.Logf("manager metrics: %v", err)
		return nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return promSum(string(raw), "rest_client_requests_total", "method")
}

func (m *managerProc) stop(b *testing.B) {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	if b.Failed() {
		b.Logf("manager log (tail):\n%s", m.tail())
	}
}
