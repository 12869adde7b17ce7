package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// Shared by all tests of the package: one real control plane, one running manager (restarted by
// TestControllerRestart) and a direct (uncached) client standing in for users and agentd.
var (
	env *testenv.Env
	k8s client.Client
	mgr *runningManager
)

const (
	timeout = 20 * time.Second
	poll    = 100 * time.Millisecond
	// testSweepInterval is the status sweep period of the test manager.
	testSweepInterval = 2 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	w := io.Discard
	if os.Getenv("TEST_LOG") != "" {
		w = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(w), zap.UseDevMode(true)))

	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	if mgr, err = startManager(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { mgr.stop() }()
	return m.Run()
}

// runningManager is a controller manager running the package's controllers against env.
type runningManager struct {
	cancel context.CancelFunc
	done   chan error
}

func startManager() (*runningManager, error) {
	m, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Restarted managers register the same controller names again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := Setup(ctx, m, Options{StatusGCInterval: testSweepInterval}); err != nil {
		cancel()
		return nil, err
	}
	rm := &runningManager{cancel: cancel, done: make(chan error, 1)}
	go func() { rm.done <- m.Start(ctx) }()
	syncCtx, syncCancel := context.WithTimeout(ctx, timeout)
	defer syncCancel()
	if !m.GetCache().WaitForCacheSync(syncCtx) {
		cancel()
		return nil, fmt.Errorf("manager cache did not sync")
	}
	return rm, nil
}

func (m *runningManager) stop() {
	m.cancel()
	<-m.done
}

// --- fixtures ---

func randSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + randSuffix()}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

func ensureNode(t *testing.T, name string) {
	t.Helper()
	if err := k8s.Create(context.Background(), testenv.Node(name)); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating node %s: %v", name, err)
	}
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// createStatus creates a GuestAgentStatus as agentd would (its node exists first, or the sweep
// would rightly delete it).
func createStatus(t *testing.T, ns, name, node string) *gav1.GuestAgentStatus {
	t.Helper()
	ensureNode(t, node)
	uuid := newUUID()
	gas := &gav1.GuestAgentStatus{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{gav1.LabelNode: node, gav1.LabelDomainUUID: uuid}},
		Spec: gav1.GuestAgentStatusSpec{DomainName: name, DomainUUID: uuid, NodeName: node},
	}
	if err := k8s.Create(context.Background(), gas); err != nil {
		t.Fatalf("creating GuestAgentStatus: %v", err)
	}
	return gas
}

// rebootSpec is a Reboot whose policy fits in the short deadlines of these tests.
func rebootSpec(target string) gav1.GuestAgentCommandSpec {
	return gav1.GuestAgentCommandSpec{Target: target, Action: gav1.ActionReboot,
		Power: &gav1.PowerPolicy{Methods: []gav1.PowerMethod{gav1.PowerQemu}, GracePeriodSeconds: ptr.To[int32](1)}}
}

func createCommand(t *testing.T, ns, name string, spec gav1.GuestAgentCommandSpec) *gav1.GuestAgentCommand {
	t.Helper()
	cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), cmd); err != nil {
		t.Fatalf("creating GuestAgentCommand: %v", err)
	}
	return cmd
}

func getCommand(g Gomega, key client.ObjectKey) *gav1.GuestAgentCommand {
	cmd := &gav1.GuestAgentCommand{}
	g.Expect(k8s.Get(context.Background(), key, cmd)).To(Succeed())
	return cmd
}

// waitPhase waits until the command reaches phase and returns it.
func waitPhase(t *testing.T, key client.ObjectKey, phase gav1.CommandPhase) *gav1.GuestAgentCommand {
	t.Helper()
	var cmd *gav1.GuestAgentCommand
	NewWithT(t).Eventually(func(g Gomega) {
		cmd = getCommand(g, key)
		g.Expect(cmd.Status.Phase).To(Equal(phase), "reason %s: %s", cmd.Status.Reason, cmd.Status.Message)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	return cmd
}

// claim does what agentd does before touching the guest: an optimistically locked status write
// moving a Scheduled command to Running. It returns the claimed object (its resourceVersion is
// agentd's lock for the outcome write).
func claim(t *testing.T, key client.ObjectKey) *gav1.GuestAgentCommand {
	t.Helper()
	var cmd *gav1.GuestAgentCommand
	NewWithT(t).Eventually(func(g Gomega) {
		cmd = getCommand(g, key)
		g.Expect(cmd.Status.Phase).To(Equal(gav1.PhaseScheduled))
		now := metav1.Now()
		cmd.Status.Phase, cmd.Status.Reason, cmd.Status.Message = gav1.PhaseRunning, gav1.ReasonRunning, "Running"
		cmd.Status.ClaimedBy, cmd.Status.StartTime = "agentd-test", &now
		// Update carries the resourceVersion: a conflict means someone else wrote first.
		g.Expect(k8s.Status().Update(context.Background(), cmd)).To(Succeed())
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	return cmd
}

// complete writes agentd's outcome on the claimed object (same resourceVersion lock).
func complete(claimed *gav1.GuestAgentCommand, phase gav1.CommandPhase, reason string) error {
	cmd := claimed.DeepCopy()
	now := metav1.Now()
	status := metav1.ConditionTrue
	if phase == gav1.PhaseFailed {
		status = metav1.ConditionFalse
	}
	cmd.Status.Phase, cmd.Status.Reason, cmd.Status.Message = phase, reason, "Done by agentd-test"
	cmd.Status.CompletionTime = &now
	cmd.Status.Agents = []gav1.AgentType{gav1.AgentQemu}
	for i := range cmd.Status.Conditions {
		if cmd.Status.Conditions[i].Type == gav1.ConditionSucceeded {
			cmd.Status.Conditions[i].Status, cmd.Status.Conditions[i].Reason = status, reason
			cmd.Status.Conditions[i].Message, cmd.Status.Conditions[i].LastTransitionTime = "Done by agentd-test", now
		}
	}
	return k8s.Status().Update(context.Background(), cmd)
}

// commandEvents returns the events.k8s.io Events about the command named name, by reason.
func commandEvents(g Gomega, ns, name string) map[string][]eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	out := map[string][]eventsv1.Event{}
	for _, e := range list.Items {
		if e.Regarding.Kind == "GuestAgentCommand" && e.Regarding.Name == name {
			out[e.Reason] = append(out[e.Reason], e)
		}
	}
	return out
}

// eventCount is how many times reason was reported about the command: Event objects plus the
// repetitions the events library folds into a series.
func eventCount(events map[string][]eventsv1.Event, reason string) int {
	n := 0
	for _, e := range events[reason] {
		n++
		if e.Series != nil && e.Series.Count > 1 {
			n += int(e.Series.Count) - 1
		}
	}
	return n
}

// expectEventsOnce waits until each reason was reported about the command, then checks for a
// while that each was reported exactly once and nothing else appeared.
func expectEventsOnce(t *testing.T, ns, name string, reasons ...string) {
	t.Helper()
	g := NewWithT(t)
	check := func(g Gomega) {
		ev := commandEvents(g, ns, name)
		for _, r := range reasons {
			g.Expect(eventCount(ev, r)).To(Equal(1), "events with reason %s", r)
		}
		g.Expect(ev).To(HaveLen(len(reasons)), "reasons: %v", keys(ev))
	}
	g.Eventually(check).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Consistently(check).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func condition(cmd *gav1.GuestAgentCommand, condType string) metav1.Condition {
	for _, c := range cmd.Status.Conditions {
		if c.Type == condType {
			return c
		}
	}
	return metav1.Condition{}
}

// counterValue reads guestagent_command_total{action,result} from the controller-runtime registry.
func counterValue(t *testing.T, action gav1.Action, result string) float64 {
	t.Helper()
	v, err := testenv.CounterValue("guestagent_command_total", map[string]string{"action": string(action), "result": result})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// histogramCount reads the sample count of guestagent_command_duration_seconds{action}.
func histogramCount(t *testing.T, action gav1.Action) uint64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "guestagent_command_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "action" && l.GetValue() == string(action) {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func nodeName(prefix string) string { return strings.ToLower(prefix) + "-" + randSuffix() }
