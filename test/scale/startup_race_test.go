package scale

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/app"
	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// slowWatcher is a virt.Watcher whose first discovery is slow, like virt.Manager's on a host with
// many domains (or whose event handler is slow): Connected() is true at once, the domains arrive
// one by one, delay apart, and Synced() turns true after the last one.
type slowWatcher struct {
	doms  []virt.Domain
	delay time.Duration

	mu     sync.Mutex
	seen   []virt.Domain
	synced bool
}

func (w *slowWatcher) Run(ctx context.Context, h virt.Handler) error {
	for _, d := range w.doms {
		w.mu.Lock()
		w.seen = append(w.seen, d)
		w.mu.Unlock()
		h(virt.Event{Type: virt.EventDomainAdded, Domain: d, Lifecycle: virt.LifecycleDiscovered, Reason: "listing"})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.delay):
		}
	}
	w.mu.Lock()
	w.synced = true
	w.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (w *slowWatcher) Connected() bool { return true }

func (w *slowWatcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

func (w *slowWatcher) Domains() []virt.Domain {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]virt.Domain(nil), w.seen...)
}

func (w *slowWatcher) Domain(uuid string) (virt.Domain, bool) {
	for _, d := range w.Domains() {
		if d.UUID == uuid {
			return d, true
		}
	}
	return virt.Domain{}, false
}

type noPowerButton struct{}

func (noPowerButton) ACPIShutdown(context.Context, string) error { return nil }
func (noPowerButton) ACPIReboot(context.Context, string) error   { return nil }

// TestStartupSlowDiscovery: every domain discovered at startup gets its GuestAgentStatus, also
// when the discovery takes longer than the publisher's startup listing. Regression test for the
// startup race in docs/benchmarks.md (Findings 1): agentd's post-discovery cleanup took its
// "present" set as soon as the watcher was connected and then removed every publisher entry not
// in it, including domains discovered in between; idle domains then never got an object.
func TestStartupSlowDiscovery(t *testing.T) {
	if env == nil {
		t.Skip("set GA_SCALE=1 (needs the envtest control plane)")
	}
	const n, node = 40, "race-node"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := env.Client.Create(ctx, testenv.Node(node)); err != nil {
		t.Fatal(err)
	}
	w := &slowWatcher{delay: 50 * time.Millisecond}
	for i := range n {
		w.doms = append(w.doms, virt.Domain{UUID: fmt.Sprintf("7ace0000-0000-4000-8000-%012d", i), Name: fmt.Sprintf("race-%02d", i),
			State: virt.StateRunning, Persistent: true, HasQGAChannel: true, QGAChannel: guest.ChannelConnected,
			Placement: virt.Placement{Publish: true}})
	}
	cfg := config.Default()
	cfg.NodeName, cfg.DefaultNamespace = node, defaultNS
	cfg.MetricsAddr, cfg.HealthAddr = "0", "0"
	cfg.EnableOvirtAgent = false
	qga := servicefake.NewQGA()
	var changed func(string)
	agent, err := app.Build(cfg, env.Config, env.Scheme, app.Deps{
		Watcher: w, QGA: qga, PowerButton: noPowerButton{}, Registry: prometheus.NewRegistry(), QGAChanged: &changed,
	}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	qga.OnChange = changed
	done := make(chan error, 1)
	go func() { done <- agent.Start(ctx) }()
	defer func() {
		cancel()
		<-done
		_ = env.Client.DeleteAllOf(context.Background(), &gav1.GuestAgentStatus{}, client.InNamespace(defaultNS),
			client.MatchingLabels{gav1.LabelNode: node})
	}()

	// discovery takes n × delay; then wait for the publisher to go idle (default 5 QPS: ~20 s)
	objs := &metav1.PartialObjectMetadataList{}
	objs.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatusList"))
	deadline := time.Now().Add(2 * time.Minute)
	idleSince := time.Time{}
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		if err := env.Client.List(ctx, objs, client.MatchingLabels{gav1.LabelNode: node}); err != nil {
			continue
		}
		if len(objs.Items) == n {
			return
		}
		if len(w.Domains()) < n || agent.Publisher.Pending() > 0 {
			idleSince = time.Time{}
			continue
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		if time.Since(idleSince) > 15*time.Second {
			break
		}
	}
	t.Errorf("%d of %d discovered domains have a GuestAgentStatus; publisher idle (%d pending)", len(objs.Items), n, agent.Publisher.Pending())
}
