package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"

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

// TestStartupSlowDiscovery: every domain discovered at startup gets its GuestAgentStatus, also
// when the discovery takes longer than the publisher's startup listing and the domains stay idle
// (nothing else would make agentd write them later). agentd's post-discovery cleanup must not
// remove publisher entries of domains discovered after the watcher connected.
func TestStartupSlowDiscovery(t *testing.T) {
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
	// agentd's default publishing rate (5 QPS), so that the discovery outlasts the startup listing
	cfg := config.Default()
	cfg.NodeName, cfg.DefaultNamespace = node, defaultNS
	cfg.MetricsAddr, cfg.HealthAddr = "0", "0"
	cfg.EnableOvirtAgent = false
	qga := servicefake.NewQGA()
	agent, err := app.Build(cfg, env.Config, env.Scheme, app.Deps{
		Controller: crconfig.Controller{SkipNameValidation: ptr.To(true)},
		Watcher:    w, QGA: qga, PowerButton: acpi, Registry: prometheus.NewRegistry(),
	}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- agent.Start(ctx) }()
	defer func() {
		cancel()
		<-done
		_ = env.Client.DeleteAllOf(context.Background(), &gav1.GuestAgentStatus{}, client.InNamespace(defaultNS),
			client.MatchingLabels{gav1.LabelNode: node})
	}()

	// The discovery takes n × delay, the publishing at 5 QPS about n/5 s more.
	objs := &metav1.PartialObjectMetadataList{}
	objs.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatusList"))
	NewWithT(t).Eventually(func() (int, error) {
		err := env.Client.List(ctx, objs, client.MatchingLabels{gav1.LabelNode: node})
		return len(objs.Items), err
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Equal(n),
		func() string {
			return fmt.Sprintf("discovered domains with a GuestAgentStatus (%d pending in the publisher)", agent.Publisher.Pending())
		})
}
