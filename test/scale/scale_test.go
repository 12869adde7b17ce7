package scale

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"guestagent.io/operator/agentd/app"
	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// env is the shared control plane; nil unless GA_SCALE=1.
var env *testenv.Env

const (
	nodeName  = "scale-node"
	defaultNS = "guestagent-system"
)

func TestMain(m *testing.M) {
	if os.Getenv("GA_SCALE") != "1" {
		os.Exit(m.Run()) // every test and benchmark skips
	}
	crlog.SetLogger(logr.Discard()) // the test prints its table and nothing else
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: defaultNS}}, testenv.Node(nodeName)} {
		if err := env.Client.Create(ctx, obj); err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = env.Stop()
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// options are the knobs of one run, from the environment.
type options struct {
	sizes    []int
	window   time.Duration // steady-state measurement window
	settle   time.Duration // minimum time after start before the window opens
	forceQGA bool          // report QGA channels as connected (see scaleWatcher)
	qemuGA   bool          // a real qemu-ga per domain behind qga.SocketAPI (qemuga_test.go)
	ogaEvery int           // every ogaEvery-th domain gets an ovirt-guest-agent.0 channel (0: none)
	profile  string        // CPU profile of the window (empty: none)
	// heap profile (in use and allocated) at the end of the window (empty: none)
	heapProfile string
}

func loadOptions(t testing.TB) options {
	o := options{sizes: []int{100, 1000}, window: 60 * time.Second, settle: 130 * time.Second, forceQGA: true, ogaEvery: 4}
	dur := func(key string, d *time.Duration) {
		if v := os.Getenv(key); v != "" {
			p, err := time.ParseDuration(v)
			if err != nil || p < 0 {
				t.Fatalf("%s=%q: want a duration", key, v)
			}
			*d = p
		}
	}
	dur("GA_SCALE_WINDOW", &o.window)
	dur("GA_SCALE_SETTLE", &o.settle)
	if v := os.Getenv("GA_SCALE_SIZES"); v != "" {
		o.sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("GA_SCALE_SIZES=%q: want a comma-separated list of positive integers", v)
			}
			o.sizes = append(o.sizes, n)
		}
	}
	switch v := os.Getenv("GA_SCALE_QGA"); v {
	case "", "connected":
	case "xml":
		o.forceQGA = false
	case "qemu-ga":
		o.qemuGA = true
	default:
		t.Fatalf("GA_SCALE_QGA=%q: want connected, xml or qemu-ga", v)
	}
	if v := os.Getenv("GA_SCALE_OGA_EVERY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("GA_SCALE_OGA_EVERY=%q: want a non-negative integer", v)
		}
		o.ogaEvery = n
	}
	o.profile = os.Getenv("GA_SCALE_CPUPROFILE")
	o.heapProfile = os.Getenv("GA_SCALE_HEAPPROFILE")
	return o
}

// domainUUID is the UUID of generated domain i.
func domainUUID(i int) string { return fmt.Sprintf("5ca1e000-0000-4000-8000-%012d", i) }

// writeNode writes a test:/// node file with n running domains. Every domain has a QGA channel
// (its source is qgaSock(i) when qgaSock is set, else a path that never exists); every
// ogaEvery-th one also has an ovirt-guest-agent.0 channel whose socket never exists, so the oVirt
// agent's dial/retry/cooldown cycle is part of the measured cost.
func writeNode(t testing.TB, n, ogaEvery int, qgaSock func(i int) string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("<node><cpu><mhz>2000</mhz><model>i686</model><active>2</active><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>8388608</memory>\n")
	for i := range n {
		qgaPath := fmt.Sprintf("%s/missing/%d.qga", dir, i)
		if qgaSock != nil {
			qgaPath = qgaSock(i)
		}
		oga := ""
		if ogaEvery > 0 && i%ogaEvery == 0 {
			oga = fmt.Sprintf(`<channel type='unix'><source mode='bind' path='%s/missing/%d.oga'/><target type='virtio' name='ovirt-guest-agent.0'/></channel>`, dir, i)
		}
		fmt.Fprintf(&b, `<domain type='test'><name>%s</name><uuid>%s</uuid><memory>1048576</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>
<devices><interface type='network'><source network='default'/><mac address='52:54:00:%02x:%02x:%02x'/></interface>
<channel type='unix'><source mode='bind' path='%s'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>%s</devices></domain>
`, domainName(i), domainUUID(i), (i>>16)&0xff, (i>>8)&0xff, i&0xff, qgaPath, oga)
	}
	b.WriteString(`<network><name>default</name><bridge name='virbr0'/><forward/><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network></node>` + "\n")
	p := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// scaleWatcher wraps the real virt.Manager: it counts the events the Manager delivers and, when
// forceQGA is set, reports the QGA channel of running domains as Connected. The test driver
// drops the channel's state attribute and never sends agent events, so without this the poller
// would never call libvirt for these domains (it polls connected channels only); with it every
// agent call reaches the test driver and fails fast with VIR_ERR_NO_SUPPORT.
type scaleWatcher struct {
	*virt.Manager
	forceQGA bool
	events   [8]atomic.Int64 // by virt.EventType
}

func (w *scaleWatcher) fix(d virt.Domain) virt.Domain {
	if w.forceQGA && d.HasQGAChannel && d.State == virt.StateRunning && d.QGAChannel == guest.ChannelUnknown {
		d.QGAChannel = guest.ChannelConnected
	}
	return d
}

func (w *scaleWatcher) Run(ctx context.Context, h virt.Handler) error {
	return w.Manager.Run(ctx, func(ev virt.Event) {
		if int(ev.Type) < len(w.events) {
			w.events[ev.Type].Add(1)
		}
		ev.Domain = w.fix(ev.Domain)
		h(ev)
	})
}

func (w *scaleWatcher) Domains() []virt.Domain {
	ds := w.Manager.Domains()
	for i := range ds {
		ds[i] = w.fix(ds[i])
	}
	return ds
}

func (w *scaleWatcher) Domain(uuid string) (virt.Domain, bool) {
	d, ok := w.Manager.Domain(uuid)
	return w.fix(d), ok
}

func (w *scaleWatcher) eventCount() int64 {
	var n int64
	for i := range w.events {
		n += w.events[i].Load()
	}
	return n
}

// qgaCommands are the commands countingAPI counts one by one; the last entry counts any other.
var qgaCommands = [...]string{qga.CmdInfo, qga.CmdUsers, qga.CmdOSInfo, qga.CmdTimezone, qga.CmdHostName, qga.CmdInterfaces,
	qga.CmdDevices, qga.CmdVCPUs, qga.CmdFSInfo, qga.CmdDisks, qga.CmdPing, "other"}

// qgaClasses are the error classes countingAPI counts one by one; the last entry counts any other.
var qgaClasses = [...]qga.ErrorClass{qga.ErrTimeout, qga.ErrNotConnected, qga.ErrUnsupported, qga.ErrDomainNotRunning,
	qga.ErrAgentError, qga.ErrLibvirtError, "other"}

// countingAPI counts the calls the poller makes through qga.DomainAPI, by command, and how many
// succeeded and failed (by error class). With the LibvirtAPI each call is at least one libvirt
// call (a domain lookup plus the agent call, plus AgentSetResponseTimeout for typed calls); with
// the SocketAPI (GA_SCALE_QGA=qemu-ga) it is one request/reply on the agent's socket. The
// counters are lock-free (array indices found by a short linear scan).
type countingAPI struct {
	qga.DomainAPI
	calls, failed atomic.Int64
	byCmd         [len(qgaCommands)]struct{ ok, failed atomic.Int64 }
	byClass       [len(qgaClasses)]atomic.Int64
}

func (c *countingAPI) count(cmd string, err error) {
	i := 0
	for i < len(qgaCommands)-1 && qgaCommands[i] != cmd {
		i++
	}
	c.calls.Add(1)
	if err == nil {
		c.byCmd[i].ok.Add(1)
		return
	}
	c.failed.Add(1)
	c.byCmd[i].failed.Add(1)
	cl, j := qga.ClassOf(err), 0
	for j < len(qgaClasses)-1 && qgaClasses[j] != cl {
		j++
	}
	c.byClass[j].Add(1)
}

func (c *countingAPI) Raw(ctx context.Context, uuid, cmd string, to time.Duration) (json.RawMessage, error) {
	r, err := c.DomainAPI.Raw(ctx, uuid, cmd, to)
	c.count(cmd, err)
	return r, err
}

func (c *countingAPI) GuestInfo(ctx context.Context, uuid string, t qga.InfoType, to time.Duration) (*qga.GuestInfoReply, error) {
	r, err := c.DomainAPI.GuestInfo(ctx, uuid, t, to)
	c.count(t.Command(), err)
	return r, err
}

func (c *countingAPI) Interfaces(ctx context.Context, uuid string, to time.Duration) ([]qga.NetInterface, error) {
	r, err := c.DomainAPI.Interfaces(ctx, uuid, to)
	c.count(qga.CmdInterfaces, err)
	return r, err
}

func (c *countingAPI) VCPUs(ctx context.Context, uuid string, to time.Duration) ([]qga.VCPU, error) {
	r, err := c.DomainAPI.VCPUs(ctx, uuid, to)
	c.count(qga.CmdVCPUs, err)
	return r, err
}

// callCounts is a snapshot of countingAPI's per-command and per-class counters.
type callCounts struct {
	ok, failed [len(qgaCommands)]int64
	classes    [len(qgaClasses)]int64
}

func (c *countingAPI) snapshot() callCounts {
	var s callCounts
	for i := range c.byCmd {
		s.ok[i], s.failed[i] = c.byCmd[i].ok.Load(), c.byCmd[i].failed.Load()
	}
	for i := range c.byClass {
		s.classes[i] = c.byClass[i].Load()
	}
	return s
}

// perMinute formats the per-command and per-class rates between two snapshots.
func perMinute(a, b callCounts, mins float64) (byCmd, byClass string) {
	var cs, ks []string
	for i, cmd := range qgaCommands {
		ok, failed := float64(b.ok[i]-a.ok[i])/mins, float64(b.failed[i]-a.failed[i])/mins
		if ok != 0 || failed != 0 {
			cs = append(cs, fmt.Sprintf("%s %.0f/%.0f", cmd, ok, failed))
		}
	}
	for i, cl := range qgaClasses {
		if d := b.classes[i] - a.classes[i]; d != 0 {
			ks = append(ks, fmt.Sprintf("%s %.0f", cl, float64(d)/mins))
		}
	}
	if len(cs) == 0 {
		cs = []string{"none"}
	}
	if len(ks) == 0 {
		ks = []string{"none"}
	}
	return strings.Join(cs, ", "), strings.Join(ks, ", ")
}

// requestCounter counts agentd's HTTP requests to the apiserver by kind (it wraps the rest
// config's transport, so it sees every request of every client agentd builds).
type requestCounter struct {
	mu     sync.Mutex
	byKind map[string]int64
}

func (rc *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		kind := r.Method
		if r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true" {
			kind = "WATCH"
		}
		rc.mu.Lock()
		rc.byKind[kind]++
		rc.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// snapshot returns reads (GET) and writes (POST/PUT/PATCH/DELETE); watches are not counted.
func (rc *requestCounter) snapshot() (reads, writes int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for k, v := range rc.byKind {
		switch k {
		case http.MethodGet:
			reads += v
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			writes += v
		}
	}
	return reads, writes
}

// sample is the process state at one instant.
type sample struct {
	at                    time.Time
	cpu                   time.Duration // user + system CPU of the whole test process
	qgaCalls, qgaFailed   int64
	qgaBy                 callCounts
	virtEvents            int64
	apiReads, apiWrites   int64
	statusWrites, skipped float64 // publisher metrics
	statusWritesOK        float64 // status writes with result "success"
	libvirtCalls          float64 // the Manager's libvirt calls (guestagent_agentd_libvirt_calls_total)
}

func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus returns VmRSS and VmHWM of this process in bytes.
func procStatus(t testing.TB) (rss, hwm int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// metric sums every series of a counter family in reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	return metricWhere(t, reg, name, "", "")
}

// metricWhere sums the series of a counter family in reg whose label has value (every series
// when label is empty).
func metricWhere(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if label != "" {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label && lp.GetValue() != value {
						continue series
					}
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// result is what one run measured.
type result struct {
	n                     int
	objectsAt, idleAt     time.Duration // all N objects exist / publisher queue empty
	missing               int           // objects never created (startup failure)
	startupWrites         int64         // agentd's API writes until idle
	window                time.Duration
	cpuPerMin             float64 // CPU seconds per minute over the window
	rssMin, rssMax, hwm   int64
	goroutines            int // at the end of the window
	goroutinesMin, gMax   int
	qgaPerMin, failedFrac float64
	qgaOKPerMin           float64
	qgaFailedPerMin       float64
	qgaByCmd, qgaByClass  string // per minute: "cmd ok/failed, …" and "class n, …"
	eventsPerMin          float64
	libvirtPerMin         float64 // the Manager's libvirt calls (QGA calls are counted separately)
	apiReadsPerMin        float64
	apiWritesPerMin       float64
	statusWritesPerMin    float64
	skippedPerMin         float64
	heapInuse             uint64
	loadStart, loadEnd    string // /proc/loadavg when the window opens / closes
	fds                   int    // open fds of the test process at the end of the window

	// GA_SCALE_QGA=qemu-ga only
	qemuGA               bool
	agentCPUPerMin       float64 // the qemu-ga processes' CPU seconds per minute (not agentd's)
	agentRSS, agentPSS   int64   // their summed VmRSS and Pss at the end of the window
	agentsDead           int     // qemu-ga processes not running at the end of the window
	statusWritesOKPerMin float64
	watch                watchReport // what really changed in the window
	lackingData          []string    // objects without QGA data at the end of the window
}

// runScale starts agentd for n domains, waits for the startup to finish and the settle time to
// pass, then measures a steady-state window. It returns the figures; it asserts only properties
// (all objects published, no status write while nothing changes).
func runScale(t testing.TB, o options, n int) result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fleet *qemuGAFleet
	var qgaSock func(int) string
	if o.qemuGA {
		fleet = startQemuGAFleet(t, n) // also stopped by t.Cleanup (t.Fatal)
		defer fleet.stop()             // not left running during the next size
		qgaSock = fleet.sock
	}
	uri := "test://" + writeNode(t, n, o.ogaEvery, qgaSock)
	if err := virt.EnsureEventLoop(); err != nil {
		t.Fatal(err)
	}
	w := &scaleWatcher{Manager: virt.NewManager(virt.Config{URI: uri, Log: logr.Discard()}), forceQGA: o.forceQGA || o.qemuGA}
	cfg := config.Default()
	cfg.NodeName = nodeName
	cfg.DefaultNamespace = defaultNS
	cfg.LibvirtURI = uri
	cfg.MetricsAddr, cfg.HealthAddr = "0", "0"

	api := &countingAPI{DomainAPI: qga.NewLibvirtAPI(w.LookupDomain)}
	if o.qemuGA {
		sock := qga.NewSocketAPI(fleet.path)
		defer func() { _ = sock.Close() }() // after agentd stopped (defers run last-in first-out)
		api.DomainAPI = sock
	}
	qgaAgent, err := app.NewQGA(qga.Config{
		API:     api,
		Domains: w.Domains,
		Periods: qga.Periods{Caps: cfg.Poll.Capabilities.Duration, Users: cfg.Poll.Users.Duration,
			Sys: cfg.Poll.System.Duration, CPUs: cfg.Poll.CPUs.Duration, Disks: cfg.Poll.Disks.Duration},
		BootWindow:      cfg.Poll.BootWindow.Duration,
		CallTimeout:     cfg.Poll.CallTimeout.Duration,
		FailureThrottle: cfg.Poll.FailureDelay.Duration,
		Workers:         cfg.Workers(),
		Log:             logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rc := &requestCounter{byKind: map[string]int64{}}
	restCfg := rest.CopyConfig(env.Config)
	restCfg.Wrap(rc.wrap)
	reg := prometheus.NewRegistry()
	virt.MustRegisterMetrics(reg)
	agent, err := app.Build(cfg, restCfg, env.Scheme, app.Deps{
		Controller: crconfig.Controller{SkipNameValidation: ptr.To(true)},
		Watcher:    w, QGA: qgaAgent, PowerButton: virt.PowerButton{M: w.Manager}, Registry: reg,
	}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}

	take := func() sample {
		r, wr := rc.snapshot()
		return sample{at: time.Now(), cpu: cpuTime(t), qgaCalls: api.calls.Load(), qgaFailed: api.failed.Load(), qgaBy: api.snapshot(),
			virtEvents: w.eventCount(), apiReads: r, apiWrites: wr,
			statusWrites:   metric(t, reg, "guestagent_agentd_status_writes_total"),
			statusWritesOK: metricWhere(t, reg, "guestagent_agentd_status_writes_total", "result", "success"),
			skipped:        metric(t, reg, "guestagent_agentd_status_skipped_unchanged_total"),
			libvirtCalls:   metric(t, reg, "guestagent_agentd_libvirt_calls_total")}
	}

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- agent.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agentd: %v", err)
		}
		// leave the control plane clean for the next size
		bg := context.Background()
		_ = env.Client.DeleteAllOf(bg, &gav1.GuestAgentStatus{}, client.InNamespace(defaultNS))
		left := &metav1.PartialObjectMetadataList{}
		left.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatusList"))
		for range 60 {
			if err := env.Client.List(bg, left, client.InNamespace(defaultNS)); err == nil && len(left.Items) == 0 {
				break
			}
			time.Sleep(time.Second)
		}
	}()

	res := result{n: n, window: o.window, qemuGA: o.qemuGA}
	// startup: until all N objects exist and the publisher's queue is empty
	objs := &metav1.PartialObjectMetadataList{}
	objs.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatusList"))
	deadline := time.Now().Add(time.Duration(n)*time.Second + 5*time.Minute)
	lastCount, stableSince := -1, time.Now()
	for res.idleAt == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("startup of %d domains did not finish: %d objects, %d pending", n, len(objs.Items), agent.Publisher.Pending())
		}
		time.Sleep(time.Second)
		if res.objectsAt == 0 {
			if err := env.Client.List(ctx, objs, client.MatchingLabels{gav1.LabelNode: nodeName}); err != nil {
				t.Logf("listing: %v", err)
				continue
			}
			if len(objs.Items) != lastCount {
				lastCount, stableSince = len(objs.Items), time.Now()
			}
			if len(objs.Items) == n {
				res.objectsAt = time.Since(start)
			}
		}
		idle := agent.Publisher.Pending() == 0
		switch {
		case res.objectsAt != 0 && idle:
			res.idleAt = time.Since(start)
		case idle && time.Since(stableSince) > time.Minute:
			// The publisher is idle but objects are missing: a property failure (discovered
			// domains lost), reported; the steady state is still measured.
			t.Errorf("startup of %d domains: publisher idle for a minute with only %d objects", n, len(objs.Items))
			res.missing = n - len(objs.Items)
			res.idleAt = time.Since(start)
		}
	}
	_, res.startupWrites = rc.snapshot()
	if rest := o.settle - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}

	var sw *statusWatch
	if o.qemuGA {
		// real agents: data may really change; record what does (outside agentd's figures as far
		// as possible: snapshot in a file, watch goroutine idle unless objects change)
		sw = startStatusWatch(t, ctx)
		defer func() {
			if sw != nil { // stopped below on the normal path
				sw.stop()
			}
		}()
	}
	var agentCPUa time.Duration
	if fleet != nil {
		agentCPUa, _ = fleet.cpu() // before take(): reading 1,000 /proc files is not agentd's cost
	}
	// the CPU profile covers the window only (not the test's own work before and after it)
	stopProfile := func() {}
	if o.profile != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", o.profile, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		stopProfile = sync.OnceFunc(func() { pprof.StopCPUProfile(); _ = f.Close() })
		defer stopProfile()
	}
	runtime.GC()
	res.loadStart = loadAvg()
	a := take()
	res.rssMin, res.goroutinesMin = 1<<62, 1<<30
	for end := a.at.Add(o.window); time.Now().Before(end); {
		time.Sleep(min(5*time.Second, time.Until(end)))
		rss, _ := procStatus(t)
		g := runtime.NumGoroutine()
		res.rssMin, res.rssMax = min(res.rssMin, rss), max(res.rssMax, rss)
		res.goroutinesMin, res.gMax = min(res.goroutinesMin, g), max(res.gMax, g)
	}
	b := take()
	stopProfile()
	res.loadEnd = loadAvg()
	if o.heapProfile != "" {
		writeHeapProfile(t, fmt.Sprintf("%s.%d", o.heapProfile, n))
	}
	_, res.hwm = procStatus(t)
	res.goroutines = runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.heapInuse = ms.HeapInuse
	res.fds = openFDs()
	var agentCPUb time.Duration
	if fleet != nil {
		agentCPUb, res.agentsDead = fleet.cpu()
		res.agentRSS, res.agentPSS = fleet.memory()
	}

	mins := b.at.Sub(a.at).Minutes()
	res.cpuPerMin = (b.cpu - a.cpu).Seconds() / mins
	res.qgaPerMin = float64(b.qgaCalls-a.qgaCalls) / mins
	res.qgaFailedPerMin = float64(b.qgaFailed-a.qgaFailed) / mins
	res.qgaOKPerMin = res.qgaPerMin - res.qgaFailedPerMin
	res.qgaByCmd, res.qgaByClass = perMinute(a.qgaBy, b.qgaBy, mins)
	res.agentCPUPerMin = (agentCPUb - agentCPUa).Seconds() / mins
	res.statusWritesOKPerMin = (b.statusWritesOK - a.statusWritesOK) / mins
	if d := b.qgaCalls - a.qgaCalls; d > 0 {
		res.failedFrac = float64(b.qgaFailed-a.qgaFailed) / float64(d)
	}
	res.eventsPerMin = float64(b.virtEvents-a.virtEvents) / mins
	res.libvirtPerMin = (b.libvirtCalls - a.libvirtCalls) / mins
	res.apiReadsPerMin = float64(b.apiReads-a.apiReads) / mins
	res.apiWritesPerMin = float64(b.apiWrites-a.apiWrites) / mins
	res.statusWritesPerMin = (b.statusWrites - a.statusWrites) / mins
	res.skippedPerMin = (b.skipped - a.skipped) / mins

	if !o.qemuGA {
		// Property, not speed: nothing written while nothing changes.
		if b.statusWrites != a.statusWrites {
			t.Errorf("%v status writes in the steady-state window, want 0", b.statusWrites-a.statusWrites)
		}
		return res
	}

	// Real agents answer with real (host) data, which may really change: what is invariant is
	// that every successful status write carries a real change of the published status, that
	// every agent is still running (no blocked command reached, no crash), that the agents
	// answered, and that every object carries their data.
	time.Sleep(graceAfterWindow)
	sw.stop()
	res.watch = sw.report()
	sw = nil
	if okWrites := b.statusWritesOK - a.statusWritesOK; okWrites > float64(res.watch.changes) {
		t.Errorf("%v successful status writes in the window but only %d real status changes (watch): some writes changed nothing",
			okWrites, res.watch.changes)
	}
	if res.agentsDead > 0 {
		t.Errorf("%d of %d qemu-ga processes are not running at the end of the window", res.agentsDead, n)
	}
	if res.qgaOKPerMin == 0 {
		t.Errorf("no successful QGA call in the window (%s)", res.qgaByClass)
	}
	objects, lacking := qgaDataCheck(t, ctx)
	res.lackingData = lacking
	if objects != n || len(lacking) > 0 {
		t.Errorf("%d objects at the end of the window (want %d), %d without QGA data:%s", objects, n, len(lacking), joinIndented(lacking))
	}
	return res
}

// writeHeapProfile writes the heap profile (as of the last GC: in-use and allocated since start).
func writeHeapProfile(t testing.TB, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// TestScale runs agentd for each size in GA_SCALE_SIZES and prints one table.
func TestScale(t *testing.T) {
	if env == nil {
		t.Skip("set GA_SCALE=1 to run the scale benchmark (minutes; see docs/benchmarks.md)")
	}
	o := loadOptions(t)
	var rows []result
	for _, n := range o.sizes {
		rows = append(rows, runScale(t, o, n))
	}
	mode := "QGA channels forced Connected (every agent call fails fast: VIR_ERR_NO_SUPPORT)"
	switch {
	case o.qemuGA:
		mode = "QGA channels forced Connected, one real qemu-ga process per domain on its own unix socket, reached through qga.SocketAPI"
	case !o.forceQGA:
		mode = "QGA channels as the test driver reports them (Unknown: the poller sends nothing)"
	}
	fmt.Printf("\nagentd on test:/// + envtest, default config, %s, OGA channel on every %d. domain (socket missing), window %v\n\n", mode, o.ogaEvery, o.window)
	fmt.Println("| domains | objects exist (missing) | publisher idle | startup API writes | CPU s/min | RSS MiB (min–max) | VmHWM MiB | heap in use MiB | goroutines (min–max) | QGA calls/min ok / failed | Manager libvirt calls/min | virt events/min | API reads/min | API writes/min | status writes/min | skipped unchanged/min |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %d | %.0f s (%d) | %.0f s | %d | %.2f | %.0f–%.0f | %.0f | %.0f | %d–%d | %.0f / %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %.0f |\n",
			r.n, r.objectsAt.Seconds(), r.missing, r.idleAt.Seconds(), r.startupWrites, r.cpuPerMin, mib(r.rssMin), mib(r.rssMax), mib(r.hwm),
			float64(r.heapInuse)/(1<<20), r.goroutinesMin, r.gMax, r.qgaOKPerMin, r.qgaFailedPerMin, r.libvirtPerMin, r.eventsPerMin,
			r.apiReadsPerMin, r.apiWritesPerMin, r.statusWritesPerMin, r.skippedPerMin)
	}
	fmt.Println()
	for _, r := range rows {
		fmt.Printf("%d domains: load average %s at the window's start, %s at its end; %d open fds; QGA calls/min by command (ok/failed): %s; failures/min by class: %s\n",
			r.n, r.loadStart, r.loadEnd, r.fds, r.qgaByCmd, r.qgaByClass)
	}
	if !o.qemuGA {
		fmt.Println()
		return
	}
	if longest := 300 * time.Second; o.window < longest+10*time.Second {
		fmt.Printf("\nNote: the window (%v) is shorter than the longest poll period (%v: guest-info, guest-get-fsinfo, guest-get-disks) plus a tick:\n"+
			"groups polled every 120 s or 300 s are seen 0–2 times, so the QGA call rate and agentd's CPU are not a full polling cycle's average\n"+
			"(GA_SCALE_WINDOW=310s or more covers one).\n", o.window, longest)
	}
	fmt.Println("\nThe qemu-ga processes (the guests' side: not agentd's cost, not in the CPU/RSS above):")
	fmt.Println()
	fmt.Println("| domains | qemu-ga CPU s/min (all) | qemu-ga VmRSS MiB (sum) | qemu-ga Pss MiB (sum) | not running | status writes/min (ok) | real status changes in the window (objects) | watch events without status change |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %d | %.2f | %.0f | %.0f | %d | %.1f (%.1f) | %d (%d) | %d |\n", r.n, r.agentCPUPerMin, mib(r.agentRSS), mib(r.agentPSS), r.agentsDead,
			r.statusWritesPerMin, r.statusWritesOKPerMin, r.watch.changes, r.watch.objects, r.watch.same)
	}
	for _, r := range rows {
		fmt.Printf("\n%d domains: changed status fields (events):%s\n", r.n, joinIndented(r.watch.fields))
		if len(r.watch.other) > 0 {
			fmt.Printf("%d domains: other watch events:%s\n", r.n, joinIndented(r.watch.other))
		}
	}
	fmt.Println()
}

// benchScale runs one size as a benchmark (use -benchtime 1x: one run is minutes) and reports the
// steady-state figures as benchmark metrics.
func benchScale(b *testing.B, n int, qemuGA bool) {
	if env == nil {
		b.Skip("set GA_SCALE=1 to run the scale benchmark")
	}
	o := loadOptions(b)
	if qemuGA {
		o.qemuGA = true
	}
	var r result
	for i := 0; i < b.N; i++ {
		r = runScale(b, o, n)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.cpuPerMin, "cpu-s/min")
	b.ReportMetric(mib(r.rssMax), "rss-MiB")
	b.ReportMetric(mib(r.hwm), "hwm-MiB")
	b.ReportMetric(float64(r.goroutines), "goroutines")
	b.ReportMetric(r.qgaPerMin, "qga-calls/min")
	b.ReportMetric(r.qgaOKPerMin, "qga-ok-calls/min")
	b.ReportMetric(r.libvirtPerMin, "libvirt-calls/min")
	b.ReportMetric(r.statusWritesPerMin, "status-writes/min")
	b.ReportMetric(r.apiWritesPerMin, "api-writes/min")
	b.ReportMetric(r.idleAt.Seconds(), "startup-s")
	if r.qemuGA {
		b.ReportMetric(float64(r.watch.changes), "status-changes")
		b.ReportMetric(r.agentCPUPerMin, "qemu-ga-cpu-s/min")
		b.ReportMetric(mib(r.agentRSS), "qemu-ga-rss-MiB")
		b.ReportMetric(mib(r.agentPSS), "qemu-ga-pss-MiB")
	}
	b.Logf("load average %s at the window's start, %s at its end; QGA calls/min by command (ok/failed): %s; failures/min: %s",
		r.loadStart, r.loadEnd, r.qgaByCmd, r.qgaByClass)
	if r.qemuGA {
		b.Logf("changed status fields (events):%s", joinIndented(r.watch.fields))
	}
}

// BenchmarkAgentdIdle100 is 100 idle domains in steady state (GA_SCALE_QGA selects the QGA mode).
func BenchmarkAgentdIdle100(b *testing.B) { benchScale(b, 100, false) }

// BenchmarkAgentdIdle1000 is 1,000 idle domains in steady state (GA_SCALE_QGA selects the QGA mode).
func BenchmarkAgentdIdle1000(b *testing.B) { benchScale(b, 1000, false) }

// BenchmarkAgentdQemuGA100 is 100 domains, each with a real qemu-ga answering (GA_SCALE_QGA=qemu-ga).
func BenchmarkAgentdQemuGA100(b *testing.B) { benchScale(b, 100, true) }

// BenchmarkAgentdQemuGA1000 is 1,000 domains, each with a real qemu-ga answering (GA_SCALE_QGA=qemu-ga).
func BenchmarkAgentdQemuGA1000(b *testing.B) { benchScale(b, 1000, true) }
