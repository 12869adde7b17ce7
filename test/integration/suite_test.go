// Package integration runs agentd's parts together on the real control plane: envtest's
// kube-apiserver + etcd, the controller manager's reconcilers, and one or two in-process agentd
// instances (service, publisher, executor, oVirt agent Listener) whose guests are the project's
// fake oVirt guest agent over real unix sockets and, for the QEMU agent, an in-memory fake (the
// libvirt test driver has no agent). The real libvirtd + qemu-ga path is in test/e2e.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"guestagent.io/operator/agentd/app"
	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/oga/ogafake"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/controllers"
	"guestagent.io/operator/internal/testenv"
)

var env *testenv.Env

const defaultNS = "guestagent-system"

func TestMain(m *testing.M) {
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	SetDefaultConsistentlyPollingInterval(50 * time.Millisecond)
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		cancel()
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	cancel()
	// A restarted kube-apiserver goes first: it cannot shut down gracefully once etcd is gone.
	stopRestartedAPIServer()
	_ = env.Stop()
	os.Exit(code)
}

// setup creates namespaces and nodes and starts the controller manager.
func setup(ctx context.Context) error {
	c := env.Client
	for _, ns := range []string{defaultNS, "tenant-a", "tenant-b"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	for _, n := range []string{"node-a", "node-b"} {
		if err := c.Create(ctx, testenv.Node(n)); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Logger:  logr.Discard(),
	})
	if err != nil {
		return err
	}
	if err := controllers.Setup(ctx, mgr, controllers.Options{StatusGCInterval: -1}); err != nil {
		return err
	}
	go func() { _ = mgr.Start(ctx) }()
	return nil
}

// node is one in-process agentd with its fakes.
type node struct {
	name    string
	watcher *virt.Fake
	qga     *servicefake.QGA
	agent   *app.Agent
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan struct{}
}

var fastOGA = oga.Timing{
	ConnectRetryDelay: 50 * time.Millisecond, CooldownDelay: 200 * time.Millisecond,
	IdleTimeout: 5 * time.Second, ResponsiveTimeout: 5 * time.Second, FirstConnectWait: 3 * time.Second,
	CompletionTimeout: 2 * time.Second,
}

// powerButton is a fake ACPI fallback shared by every node of a test run.
type powerButton struct {
	mu    sync.Mutex
	calls []string
}

func (p *powerButton) ACPIShutdown(_ context.Context, uuid string) error {
	p.add("acpi-shutdown " + uuid)
	return nil
}
func (p *powerButton) ACPIReboot(_ context.Context, uuid string) error {
	p.add("acpi-reboot " + uuid)
	return nil
}
func (p *powerButton) Destroy(_ context.Context, uuid string) error {
	p.add("destroy " + uuid)
	return nil
}
func (p *powerButton) Reset(_ context.Context, uuid string) error {
	p.add("reset " + uuid)
	return nil
}
func (p *powerButton) add(c string) { p.mu.Lock(); p.calls = append(p.calls, c); p.mu.Unlock() }
func (p *powerButton) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

var acpi = &powerButton{}

// startNode starts an agentd for nodeName with the given domains.
func startNode(t testing.TB, nodeName string, qga *servicefake.QGA, doms ...virt.Domain) *node {
	t.Helper()
	return startNodeWithConfig(t, env.Config, nodeName, qga, doms...)
}

// startNodeWithConfig is startNode with agentd's own client configuration (e.g. a wrapped transport).
func startNodeWithConfig(t testing.TB, restCfg *rest.Config, nodeName string, qga *servicefake.QGA, doms ...virt.Domain) *node {
	t.Helper()
	return startNodeTuned(t, restCfg, nodeName, qga, func(cfg *config.Config) {
		cfg.PublishMinInterval.Duration = 20 * time.Millisecond
		cfg.QPS, cfg.Burst = 50, 100
	}, doms...)
}

// startNodeTuned starts an agentd whose configuration is agentd's defaults (node, namespace,
// metrics and health ports set for tests) changed by tune.
func startNodeTuned(t testing.TB, restCfg *rest.Config, nodeName string, qga *servicefake.QGA, tune func(*config.Config), doms ...virt.Domain) *node {
	t.Helper()
	cfg := config.Default()
	cfg.NodeName = nodeName
	cfg.DefaultNamespace = defaultNS
	cfg.MetricsAddr, cfg.HealthAddr = "0", "0"
	if tune != nil {
		tune(&cfg)
	}
	if qga == nil {
		qga = servicefake.NewQGA()
	}
	n := &node{name: nodeName, watcher: virt.NewFake(doms...), qga: qga, done: make(chan struct{}), reg: prometheus.NewRegistry()}
	a, err := app.Build(cfg, restCfg, env.Scheme, app.Deps{
		Controller: crconfig.Controller{SkipNameValidation: ptr.To(true)},
		Watcher:    n.watcher, QGA: qga, OGATiming: fastOGA, PowerButton: acpi, Registry: n.reg,
	}, testLogger(t).WithName(nodeName))
	if err != nil {
		t.Fatal(err)
	}
	n.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		if err := a.Start(ctx); err != nil {
			t.Errorf("agentd %s: %v", nodeName, err)
		}
	}()
	t.Cleanup(n.stop)
	return n
}

// testLogger logs through t for tests, and is silent for benchmarks.
func testLogger(t testing.TB) logr.Logger {
	if tt, ok := t.(*testing.T); ok {
		return testr.NewWithOptions(tt, testr.Options{Verbosity: 0})
	}
	return logr.Discard()
}

var stopMu sync.Mutex

func (n *node) stop() {
	stopMu.Lock()
	defer stopMu.Unlock()
	if n.cancel == nil {
		return
	}
	n.cancel()
	<-n.done
	n.cancel = nil
}

// qgaCalls counts the calls (e.g. "ping <uuid>") that reached the node's fake QEMU agent.
func (n *node) qgaCalls(call string) int {
	k := 0
	for _, c := range n.qga.Calls() {
		if c == call {
			k++
		}
	}
	return k
}

// ogaGuest starts a fake oVirt guest agent listening where QEMU would, and returns its socket.
func ogaGuest(t testing.TB, cfg ogafake.Config, mutate func(*ogafake.Data)) (*ogafake.Guest, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "oga")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ovirt-guest-agent.0")
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 200 * time.Millisecond
	}
	g := ogafake.New(cfg)
	if mutate != nil {
		g.SetData(mutate)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = g.ListenAndServe(ctx, path) }()
	t.Cleanup(func() { cancel(); <-done; _ = os.RemoveAll(dir) })
	NewWithT(t).Eventually(func() error {
		if _, err := os.Stat(path); err != nil {
			return err
		}
		return nil
	}).WithTimeout(5 * time.Second).Should(Succeed())
	return g, path
}

func domain(uuid, name string) virt.Domain {
	return virt.Domain{UUID: uuid, Name: name, State: virt.StateRunning, Persistent: true,
		Placement: virt.Placement{Publish: true}}
}

func withQGA(d virt.Domain) virt.Domain {
	d.HasQGAChannel = true
	d.QGAChannel = guest.ChannelConnected
	d.QGAChannelHint = guest.ChannelConnected
	return d
}

func withOGA(d virt.Domain, path string) virt.Domain {
	d.OGASocketPath, d.OGAChannelName = path, virt.OGAChannelName
	return d
}

func getGAS(ctx context.Context, ns, uuid string) (*gav1.GuestAgentStatus, error) {
	list := &gav1.GuestAgentStatusList{}
	if err := env.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{gav1.LabelDomainUUID: uuid}); err != nil {
		return nil, err
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("%d GuestAgentStatus objects for %s in %s", len(list.Items), uuid, ns)
	}
	return &list.Items[0], nil
}

func cond(gas *gav1.GuestAgentStatus, t string) metav1.ConditionStatus {
	for _, c := range gas.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}
