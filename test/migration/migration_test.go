// Package migration live-migrates a real guest between two real libvirt nodes on one machine
// (hack/two-nodes.sh: two libvirtd daemons in their own namespaces, joined by a veth pair), each
// watched by its own agentd assembled in-process by app.Build against one envtest control plane
// running the controller manager's reconcilers. The guest is a TCG test guest running Debian's
// qemu-ga and the project's oVirt guest agent (cmd/oga-guest), which records every
// lifecycle-event it receives in /run/oga-lifecycle.log; the test reads it back with guest-exec.
//
// It checks that the GuestAgentStatus follows the domain (same object, UID and executed-command
// history; QGA channel disconnected → connected on the destination), that the destination's guest
// gets after_migration, and that an aborted migration (while the source still ran, and after it
// paused) leaves the source's status intact and gives the guest after_migration with failure.
//
// Run it with hack/test-migration.sh (root; it brings the two nodes up and down). Without
// GA_MIGRATION=1 the package skips.
package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"guestagent.io/operator/agentd/app"
	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/controllers"
	"guestagent.io/operator/internal/hostcmd"
	"guestagent.io/operator/internal/testenv"
)

const (
	ns    = "guestagent-system"
	nodeA = "mig-a"
	nodeB = "mig-b"
)

var (
	root  = testenv.RepoRoot()
	env   *testenv.Env
	dir   string // GA_MIG_DIR
	nodes = map[string]*node{}
)

// node is one libvirt node with its in-process agentd.
type node struct {
	name, uri string
	rec       *recorder
	watcher   *virt.Manager
}

func logf(format string, a ...any) {
	fmt.Printf("migration %s: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

func TestMain(m *testing.M) {
	if os.Getenv("GA_MIGRATION") != "1" {
		fmt.Println("migration: GA_MIGRATION=1 not set (run hack/test-migration.sh); skipping")
		os.Exit(0)
	}
	code, err := mainErr(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "migration setup:", err)
		code = 1
	}
	os.Exit(code)
}

func mainErr(m *testing.M) (int, error) {
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctrl.SetLogger(logr.Discard()) // the control plane's reconcilers; each agentd logs on its own
	dir = os.Getenv("GA_MIG_DIR")
	uris := map[string]string{nodeA: os.Getenv("GA_MIG_URI_A"), nodeB: os.Getenv("GA_MIG_URI_B")}
	if dir == "" || uris[nodeA] == "" || uris[nodeB] == "" || os.Getenv("QGA_ENV") == "" {
		return 1, fmt.Errorf("GA_MIG_DIR, GA_MIG_URI_A, GA_MIG_URI_B and QGA_ENV must be set (eval \"$(hack/two-nodes.sh env)\")")
	}
	var err error
	if env, err = testenv.Start(); err != nil {
		return 1, err
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 1, err
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Logger: logr.Discard()})
	if err != nil {
		return 1, err
	}
	if err := controllers.Setup(ctx, mgr, controllers.Options{StatusGCInterval: -1}); err != nil {
		return 1, err
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = mgr.Start(ctx) }()
	for _, name := range []string{nodeA, nodeB} {
		if err := env.Client.Create(ctx, testenv.Node(name)); err != nil {
			return 1, err
		}
		n, start, err := buildNode(name, uris[name])
		if err != nil {
			return 1, err
		}
		nodes[name] = n
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := start(ctx); err != nil {
				logf("agentd %s stopped: %v", name, err)
			}
		}()
	}
	return m.Run(), nil
}

// buildNode assembles agentd for a node the way cmd/agentd does, against the node's libvirtd.
func buildNode(name, uri string) (*node, func(context.Context) error, error) {
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) },
		funcr.Options{LogTimestamp: true}).WithName(name)
	cfg := config.Default()
	cfg.NodeName, cfg.DefaultNamespace = name, ns
	cfg.LibvirtURI = uri
	cfg.MetricsAddr, cfg.HealthAddr = "0", "0"
	cfg.EnableOvirtAgent, cfg.LifecycleHooks = true, true
	cfg.PublishMinInterval.Duration = 50 * time.Millisecond
	w := virt.NewManager(virt.Config{URI: uri, Log: log.WithName("virt")})
	rec := &recorder{}
	q, err := app.NewQGA(qga.Config{
		API:     qga.NewLibvirtAPI(w.LookupDomain),
		Domains: w.Domains,
		Log:     log.WithName("qga"),
	})
	if err != nil {
		return nil, nil, err
	}
	a, err := app.Build(cfg, env.Config, env.Scheme, app.Deps{
		Watcher:     &recordingWatcher{Watcher: w, rec: rec},
		QGA:         q,
		PowerButton: virt.PowerButton{M: w},
		Registry:    prometheus.NewRegistry(),
		Controller:  crconfig.Controller{SkipNameValidation: ptr.To(true)},
	}, log)
	if err != nil {
		return nil, nil, err
	}
	return &node{name: name, uri: uri, rec: rec, watcher: w}, a.Start, nil
}

// recordingWatcher records every event the node's libvirt watcher delivers.
type recordingWatcher struct {
	virt.Watcher
	rec *recorder
}

func (r *recordingWatcher) Run(ctx context.Context, h virt.Handler) error {
	return r.Watcher.Run(ctx, func(ev virt.Event) { r.rec.add(ev); h(ev) })
}

type recorder struct {
	mu  sync.Mutex
	evs []virt.Event
}

func (r *recorder) add(ev virt.Event) { r.mu.Lock(); r.evs = append(r.evs, ev); r.mu.Unlock() }

// mark is the position after the events recorded so far.
func (r *recorder) mark() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.evs) }

// since returns the domain's events after mark, as "Type/Lifecycle" or "AgentChannel/<state>".
func (r *recorder) since(mark int, uuid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.evs[mark:] {
		if e.Domain.UUID != uuid {
			continue
		}
		if e.Type == virt.EventAgentChannel {
			out = append(out, "AgentChannel/"+string(e.Domain.QGAChannel))
			continue
		}
		out = append(out, e.Type.String()+"/"+e.Lifecycle.String())
	}
	return out
}

func virsh(n *node, args ...string) (string, error) { return hostcmd.Virsh(n.uri, args...) }

// guestUp defines and boots a guest with qemu-ga and the oVirt agent on node n.
func guestUp(t *testing.T, n *node, name string) string {
	t.Helper()
	down := func() {
		for _, o := range nodes {
			_, _ = virsh(o, "destroy", name)
			_, _ = virsh(o, "undefine", name)
		}
	}
	down()
	t.Cleanup(down)
	cmd := exec.Command("bash", filepath.Join(root, "hack", "guest.sh"), "up", name)
	cmd.Env = append(os.Environ(), "LIBVIRT_DEFAULT_URI="+n.uri, "WITH_OGA=1", "GA_OGA_DIR="+filepath.Join(dir, n.name, "oga"))
	start := time.Now()
	if out, err := hostcmd.Output(cmd); err != nil {
		t.Fatalf("guest up: %v\n%s", err, out)
	}
	logf("guest %s up on %s in %v", name, n.name, time.Since(start).Round(time.Millisecond))
	uuid, err := virsh(n, "domuuid", name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(uuid)
}

// migrate starts a peer-to-peer live migration of name from src to dst (the oVirt channel's
// socket moves to dst's directory: both nodes share one filesystem here) and returns a channel
// that receives virsh's error (nil on success) when it ends.
func migrate(t *testing.T, src, dst *node, name string, extra ...string) <-chan error {
	t.Helper()
	xmls := map[string]string{}
	for flag, dump := range map[string][]string{"--xml": {"dumpxml", "--migratable", name},
		"--persistent-xml": {"dumpxml", "--inactive", "--migratable", name}} {
		x, err := virsh(src, dump...)
		if err != nil {
			t.Fatal(err)
		}
		x = strings.ReplaceAll(x, filepath.Join(dir, src.name, "oga")+"/", filepath.Join(dir, dst.name, "oga")+"/")
		p := filepath.Join(t.TempDir(), strings.TrimPrefix(flag, "--")+".xml")
		if err := os.WriteFile(p, []byte(x), 0o600); err != nil {
			t.Fatal(err)
		}
		xmls[flag] = p
	}
	sock := strings.TrimPrefix(dst.uri, "qemu:///system?socket=")
	args := append([]string{"migrate", "--live", "--p2p", "--persistent", "--undefinesource",
		"--xml", xmls["--xml"], "--persistent-xml", xmls["--persistent-xml"]}, extra...)
	args = append(args, name, "qemu+unix:///system?socket="+sock)
	done := make(chan error, 1)
	go func() {
		out, err := virsh(src, args...)
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		done <- err
	}()
	return done
}

func waitDone(t *testing.T, done <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatalf("virsh migrate did not return within %v", timeout)
		return nil
	}
}

func getGAS(uuid string) (*gav1.GuestAgentStatus, error) {
	list := &gav1.GuestAgentStatusList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{gav1.LabelDomainUUID: uuid}); err != nil {
		return nil, err
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("%d GuestAgentStatus objects for %s", len(list.Items), uuid)
	}
	return &list.Items[0], nil
}

// lifecycleLog reads the oga-guest's record of received lifecycle events through qemu-ga on n.
func lifecycleLog(n *node, name string) (string, error) {
	req, _ := json.Marshal(map[string]any{"execute": "guest-exec", "arguments": map[string]any{
		"path": "/bin/sh", "arg": []string{"-c", "cat /run/oga-lifecycle.log 2>/dev/null; true"}, "capture-output": true}})
	out, err := virsh(n, "qemu-agent-command", name, string(req), "--timeout", "5")
	if err != nil {
		return "", fmt.Errorf("guest-exec: %v %s", err, out)
	}
	var r struct {
		Return struct{ PID int } `json:"return"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return "", err
	}
	var data []byte
	exited := func(context.Context) (bool, error) {
		st, err := virsh(n, "qemu-agent-command", name, fmt.Sprintf(`{"execute":"guest-exec-status","arguments":{"pid":%d}}`, r.Return.PID), "--timeout", "5")
		if err != nil {
			return false, fmt.Errorf("guest-exec-status: %v %s", err, st)
		}
		var s struct {
			Return struct {
				Exited  bool   `json:"exited"`
				OutData []byte `json:"out-data"`
			} `json:"return"`
		}
		if err := json.Unmarshal([]byte(st), &s); err != nil {
			return false, err
		}
		data = s.Return.OutData
		return s.Return.Exited, nil
	}
	// qemu-ga reports an exec's end only when asked
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, exited); err != nil {
		return "", fmt.Errorf("guest-exec in %s: %w", name, err)
	}
	return string(data), nil
}

// ping runs a Ping command against the status and waits until it succeeded.
func ping(t *testing.T, target, name string) {
	t.Helper()
	ctx := context.Background()
	cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gav1.GuestAgentCommandSpec{Target: target, Action: gav1.ActionPing}}
	if err := env.Client.Create(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() (gav1.CommandPhase, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(cmd), cmd)
		return cmd.Status.Phase, err
	}).WithTimeout(60*time.Second).Should(Equal(gav1.PhaseSucceeded), "command %s", name)
}

func executedKeys(gas *gav1.GuestAgentStatus) []string {
	var out []string
	for _, c := range gas.Status.ExecutedCommands {
		out = append(out, c.Key)
	}
	return out
}

// identity is what must survive a migration (or its failure) unchanged.
type identity struct {
	name string
	uid  types.UID
	keys []string
}

func identityOf(gas *gav1.GuestAgentStatus) identity {
	return identity{gas.Name, gas.UID, executedKeys(gas)}
}

// ready waits until the domain's status names node n with both agents connected and the oVirt
// agent at API 3 (the hooks need it).
func ready(t *testing.T, n *node, uuid string, timeout time.Duration) *gav1.GuestAgentStatus {
	t.Helper()
	var gas *gav1.GuestAgentStatus
	NewWithT(t).Eventually(func() error {
		var err error
		if gas, err = getGAS(uuid); err != nil {
			return err
		}
		s := gas.Status
		switch {
		case gas.Spec.NodeName != n.name:
			return fmt.Errorf("names node %q", gas.Spec.NodeName)
		case s.QemuAgent == nil || s.QemuAgent.ChannelState != gav1.ChannelConnected:
			return fmt.Errorf("QGA channel %+v", s.QemuAgent)
		case s.OvirtAgent == nil || ptr.Deref(s.OvirtAgent.APIVersion, 0) != 3:
			return fmt.Errorf("oVirt agent %+v", s.OvirtAgent)
		case s.Release != nil && s.Release.NodeName == n.name:
			return fmt.Errorf("released by %s", n.name)
		}
		return nil
	}).WithTimeout(timeout).Should(Succeed(), "status of %s ready on %s", uuid, n.name)
	return gas
}

// One guest, three migrations: A→B lands; B→A aborted while the source runs; B→A failing after
// the source paused (the destination's QEMU dies).
func TestLiveMigration(t *testing.T) {
	a, b := nodes[nodeA], nodes[nodeB]
	const name = "ga-mig-guest"
	uuid := guestUp(t, a, name)
	gas := ready(t, a, uuid, 90*time.Second)
	ping(t, gas.Name, "ping-before")
	var before identity
	NewWithT(t).Eventually(func() ([]string, error) {
		g, err := getGAS(uuid)
		if err == nil {
			before = identityOf(g)
		}
		return before.keys, err
	}).WithTimeout(30*time.Second).Should(HaveLen(1), "the executed Ping is recorded on the status")

	t.Run("lands on the destination", func(t *testing.T) {
		g := NewWithT(t)
		markA, markB := a.rec.mark(), b.rec.mark()
		start := time.Now()
		g.Expect(waitDone(t, migrate(t, a, b, name), 2*time.Minute)).To(Succeed())
		logf("migration A→B took %v", time.Since(start).Round(time.Millisecond))
		after := ready(t, b, uuid, 60*time.Second)
		logf("status names %s with the agents connected %v after the start", nodeB, time.Since(start).Round(time.Millisecond))
		g.Expect(identityOf(after)).To(Equal(before), "same object, UID and executed commands")
		g.Expect(after.Status.Release).NotTo(BeNil(), "the hand-over record")
		g.Expect(after.Status.Release.NodeName).To(Equal(nodeA))
		// the destination saw the domain arrive and its QGA channel go disconnected → connected
		g.Eventually(func() []string { return b.rec.since(markB, uuid) }).WithTimeout(30 * time.Second).Should(
			SatisfyAll(
				ContainElement("DomainUpdated/MigratedIn"),
				ContainElements("AgentChannel/Disconnected", "AgentChannel/Connected"),
			))
		evB := b.rec.since(markB, uuid)
		g.Expect(indexOf(evB, "AgentChannel/Disconnected")).To(BeNumerically("<", lastIndexOf(evB, "AgentChannel/Connected")), "%v", evB)
		g.Expect(evB).NotTo(ContainElement("DomainUpdated/MigrationFailed"))
		// Removed when libvirt dropped the domain before agentd read it, else Updated (shut off;
		// it leaves agentd's table at the next resync): both hand the status over
		g.Eventually(func() []string { return a.rec.since(markA, uuid) }).WithTimeout(30 * time.Second).Should(
			ContainElement(HaveSuffix("/MigratedOut")))
		g.Expect(a.rec.since(markA, uuid)).NotTo(ContainElement("DomainUpdated/MigrationFailed"))
		// the guest, now on B, got after_migration without failure, exactly once
		g.Eventually(func() (string, error) { return lifecycleLog(b, name) }).WithTimeout(30 * time.Second).
			Should(Equal("after_migration failure=false\n"))
		logf("destination events: %v", evB)
	})
	if t.Failed() {
		return
	}
	before = identityOf(ready(t, b, uuid, 30*time.Second))

	t.Run("aborted while the source runs", func(t *testing.T) {
		g := NewWithT(t)
		markB := b.rec.mark()
		start := time.Now()
		// 1 MiB/s cannot move the guest's memory before the abort
		done := migrate(t, b, a, name, "--bandwidth", "1")
		g.Eventually(func() (string, error) { return virsh(b, "domjobinfo", name) }).WithTimeout(30 * time.Second).
			Should(ContainSubstring("Outgoing migration"))
		g.Eventually(func() error { _, err := virsh(a, "domuuid", name); return err }).WithTimeout(30*time.Second).
			Should(Succeed(), "the incoming domain exists on the destination")
		// The first MIGRATION_ITERATION (≈1 s after the start here) is the source's only sign of
		// the migration: abort after it (an abort before it leaves no trace on the source).
		g.Eventually(func() bool { return b.watcher.MigratingOut(uuid) }).WithTimeout(30*time.Second).
			Should(BeTrue(), "the source's agentd knows the domain is migrating out")
		out, err := virsh(b, "domjobabort", name)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(waitDone(t, done, time.Minute)).To(MatchError(ContainSubstring("cancel")))
		g.Eventually(func() []string { return b.rec.since(markB, uuid) }).WithTimeout(30 * time.Second).
			Should(ContainElement("DomainUpdated/MigrationFailed"))
		logf("abort while running: failure reported %v after the start; source events %v", time.Since(start).Round(time.Millisecond), b.rec.since(markB, uuid))
		g.Eventually(func() (string, error) { return lifecycleLog(b, name) }).WithTimeout(30 * time.Second).
			Should(Equal("after_migration failure=false\nafter_migration failure=true\n"))
		// the source saw nothing but the failure (a periodic resync may come in between)
		g.Expect(without(b.rec.since(markB, uuid), "DomainUpdated/Resynced")).To(HaveExactElements("DomainUpdated/MigrationFailed"))
		g.Expect(identityOf(ready(t, b, uuid, 30*time.Second))).To(Equal(before), "the source's status is intact")
		g.Consistently(func() (string, error) {
			gas, err := getGAS(uuid)
			if err != nil {
				return "", err
			}
			return gas.Spec.NodeName, nil
		}).WithTimeout(2*time.Second).Should(Equal(nodeB), "the destination never adopted it")
	})
	if t.Failed() {
		return
	}

	t.Run("fails after the source paused", func(t *testing.T) {
		g := NewWithT(t)
		markB := b.rec.mark()
		// A slow link keeps the source paused in the final phase long enough to kill the
		// destination's QEMU there.
		tc := func(args ...string) error {
			out, err := hostcmd.Output(exec.Command("ip", append([]string{"netns", "exec", "ga-" + nodeB, "tc", "qdisc"}, args...)...))
			if err != nil {
				return fmt.Errorf("tc %v: %v %s", args, err, out)
			}
			return nil
		}
		g.Expect(tc("replace", "dev", "gamig-b", "root", "tbf", "rate", "8mbit", "burst", "32kbit", "latency", "400ms")).To(Succeed())
		defer func() { _ = tc("del", "dev", "gamig-b", "root") }()
		done := migrate(t, b, a, name)
		g.Eventually(func() bool { return b.watcher.MigratingOut(uuid) }).WithTimeout(30 * time.Second).Should(BeTrue())
		// a downtime of 100 s lets QEMU enter the final phase (pause the source) at once
		out, err := virsh(b, "migrate-setmaxdowntime", name, "100000")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Eventually(func() (string, error) { return virsh(b, "domstate", "--reason", name) }).WithTimeout(60 * time.Second).
			Should(ContainSubstring("paused (migrating)"))
		pid, err := os.ReadFile(filepath.Join(dir, nodeA, "run", "qemu", name+".pid"))
		g.Expect(err).NotTo(HaveOccurred())
		out, err = hostcmd.Output(exec.Command("kill", "-9", strings.TrimSpace(string(pid))))
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(waitDone(t, done, 2*time.Minute)).To(HaveOccurred())
		g.Eventually(func() []string { return b.rec.since(markB, uuid) }).WithTimeout(60 * time.Second).
			Should(ContainElements("DomainUpdated/MigrationPaused", "DomainUpdated/MigrationFailed"))
		logf("failure after the pause: source events %v", b.rec.since(markB, uuid))
		g.Eventually(func() (string, error) { return lifecycleLog(b, name) }).WithTimeout(30 * time.Second).
			Should(Equal("after_migration failure=false\nafter_migration failure=true\nafter_migration failure=true\n"))
		evB := b.rec.since(markB, uuid)
		g.Expect(evB).NotTo(ContainElement("DomainUpdated/MigratedIn"))
		g.Expect(identityOf(ready(t, b, uuid, 30*time.Second))).To(Equal(before), "the source's status is intact")
	})
}

func without(s []string, v string) []string {
	var out []string
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func lastIndexOf(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == v {
			return i
		}
	}
	return -1
}
