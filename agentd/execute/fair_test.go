package execute

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// recordingService is a guest service that records the order in which commands reach the guests
// and whether a domain ever had two power actions in flight.
type recordingService struct {
	mu       sync.Mutex
	order    []string // "<uuid> <action>"
	inFlight map[string]int
	overlaps []string
	watches  map[string]chan service.PowerChange
}

// WatchPower: the domain runs, and a delivered power action takes effect at once.
func (s *recordingService) WatchPower(uuid string) (*service.PowerWatch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watches == nil {
		s.watches = map[string]chan service.PowerChange{}
	}
	ch := make(chan service.PowerChange, 4)
	s.watches[uuid] = ch
	return service.NewPowerWatch(ch, virt.StateRunning, nil), true
}

func (s *recordingService) HostPower(context.Context, string, gav1.Action, gav1.PowerMethod) error {
	return errors.New("not used")
}

func (s *recordingService) Execute(_ context.Context, uuid string, req service.Request) (service.Result, error) {
	power := req.Spec.Action == gav1.ActionShutdown || req.Spec.Action == gav1.ActionReboot
	s.mu.Lock()
	s.order = append(s.order, uuid+" "+string(req.Spec.Action))
	if power {
		s.inFlight[uuid]++
		if s.inFlight[uuid] > 1 {
			s.overlaps = append(s.overlaps, fmt.Sprintf("%s: %d power actions at once", uuid, s.inFlight[uuid]))
		}
	}
	s.mu.Unlock()
	if power {
		// A power action takes the guest a moment to accept (not a synchronisation).
		time.Sleep(time.Millisecond)
		s.mu.Lock()
		s.inFlight[uuid]--
		ev := service.PowerStopped
		if req.Spec.Action == gav1.ActionReboot {
			ev = service.PowerRebooted
		}
		s.watches[uuid] <- service.PowerChange{Event: ev}
		s.mu.Unlock()
	}
	return service.Result{Agents: []gav1.AgentType{gav1.AgentQemu}, Message: "done"}, nil
}

func (s *recordingService) snapshot() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...), append([]string(nil), s.overlaps...)
}

// TestTenantBacklogDoesNotDelayOthers runs the executor on a real API server with a backlog of
// commands of tenant A (one guest, power actions among them) and one command of tenant B queued
// behind it: B reaches its guest within the first executions, every command reaches its guest
// exactly once, and A's guest never has two power actions in flight.
func TestTenantBacklogDoesNotDelayOthers(t *testing.T) {
	g := NewWithT(t)
	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client

	const (
		node    = "node-f"
		backlog = 200
		uuidA   = "0e7e0000-0000-4000-8000-00000000000a"
		uuidB   = "0e7e0000-0000-4000-8000-00000000000b"
	)
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	for ns, uuid := range map[string]string{"tenant-a": uuidA, "tenant-b": uuidB} {
		g.Expect(c.Create(ctx, &gav1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Name: "vm", Namespace: ns},
			Spec: gav1.GuestAgentStatusSpec{DomainName: "vm-" + ns, DomainUUID: uuid, NodeName: node}})).To(Succeed())
	}
	// The backlog as the controller leaves it: Scheduled to this node; B's command last.
	schedule := func(ns, name string, action gav1.Action) {
		cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: gav1.GuestAgentCommandSpec{Target: "vm", Action: action, DeadlineSeconds: ptr.To[int32](3600)}}
		g.Expect(c.Create(ctx, cmd)).To(Succeed())
		cmd.Status = gav1.GuestAgentCommandStatus{Phase: gav1.PhaseScheduled, NodeName: node, Reason: gav1.ReasonScheduled}
		g.Expect(c.Status().Update(ctx, cmd)).To(Succeed())
	}
	actions := []gav1.Action{gav1.ActionShutdown, gav1.ActionPing, gav1.ActionReboot}
	for i := range backlog {
		schedule("tenant-a", fmt.Sprintf("a-%03d", i), actions[i%len(actions)])
	}
	schedule("tenant-b", "b-000", gav1.ActionPing)

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{ByObject: CacheByObject(node)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	svc := &recordingService{inFlight: map[string]int{}}
	e := &Executor{Client: mgr.GetClient(), NodeName: node, InstanceID: "agentd-f", Service: svc, MaxConcurrent: 4}
	g.Expect(e.SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	g.Eventually(func() int { order, _ := svc.snapshot(); return len(order) }).
		WithTimeout(3 * time.Minute).WithPolling(50 * time.Millisecond).Should(Equal(backlog + 1))
	order, overlaps := svc.snapshot()
	// Two namespaces are queued: at most one command of A is handed out before B's, and at most
	// the three other workers' commands (all A's, one at a time) can reach a guest between B's
	// hand-out and its delivery.
	const within = 5
	posB := -1
	for i, o := range order {
		if o == uuidB+" Ping" {
			posB = i
		}
	}
	if posB < 0 || posB >= within {
		t.Errorf("tenant B's command reached its guest as execution %d of %d, want within the first %d", posB+1, len(order), within)
	}
	if len(overlaps) > 0 {
		t.Errorf("a domain had concurrent power actions: %v", overlaps)
	}
	// Every command succeeded, and reached its guest once (a second delivery would have made
	// the count above exceed backlog+1 by now; outcomes are written after the guest call).
	g.Eventually(func() error {
		var list gav1.GuestAgentCommandList
		if err := c.List(ctx, &list); err != nil {
			return err
		}
		for _, cmd := range list.Items {
			if cmd.Status.Phase != gav1.PhaseSucceeded || cmd.Status.ClaimedBy != "agentd-f" {
				return fmt.Errorf("%s/%s: %s %s", cmd.Namespace, cmd.Name, cmd.Status.Phase, cmd.Status.Reason)
			}
		}
		return nil
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Consistently(func() int { order, _ := svc.snapshot(); return len(order) }).
		WithTimeout(time.Second).Should(Equal(backlog + 1))
}
