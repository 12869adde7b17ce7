// Package app assembles agentd from its parts: the libvirt watcher, the QEMU guest agent poller,
// the oVirt guest agent Listener, GuestAgentService, the GuestAgentStatus publisher and the
// GuestAgentCommand executor, on a controller-runtime manager whose cache holds only this node's
// objects. cmd/agentd builds the libvirt-backed parts and calls Run; tests call Run with the
// libvirt test driver or fakes in their place.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/execute"
	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/publish"
	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Deps are the node-side parts that depend on libvirt; tests substitute them.
type Deps struct {
	Watcher     virt.Watcher
	QGA         service.QemuAgent
	PowerButton service.PowerButton
	// OGATiming overrides the oVirt agent's timing (tests); zero takes VDSM's values.
	OGATiming oga.Timing
	// Registry receives agentd's metrics (default controller-runtime's registry).
	Registry prometheus.Registerer
	// InstanceID prefixes this incarnation's identity (e.g. the pod UID; default the node name);
	// a random suffix is always added.
	InstanceID string
	// QGAChanged is set by Run to the function the QGA side must call when a domain's data or
	// state changed (the poller's OnChange hook).
	QGAChanged *func(uuid string)
}

// Agent is a running agentd.
type Agent struct {
	Service   *service.GuestAgentService
	Publisher *publish.Publisher
	Listener  *oga.Listener
	Manager   ctrl.Manager
}

// Build assembles agentd. Start it with Start.
func Build(cfg config.Config, restCfg *rest.Config, scheme *runtime.Scheme, deps Deps, log logr.Logger) (*Agent, error) {
	restCfg = rest.CopyConfig(restCfg)
	restCfg.QPS, restCfg.Burst = cfg.QPS, cfg.Burst
	if restCfg.UserAgent == "" {
		restCfg.UserAgent = "guestagent-agentd/" + cfg.NodeName
	}
	nodeSel := labels.SelectorFromSet(labels.Set{gav1.LabelNode: cfg.NodeName})
	byObject := publish.CacheByObject(cfg.NodeName)
	for obj, bo := range byObject { // the deletion watch keeps metadata only, without managedFields
		bo.Transform = cache.TransformStripManagedFields()
		byObject[obj] = bo
	}
	byObject[&gav1.GuestAgentCommand{}] = cache.ByObject{Label: nodeSel}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress: cfg.HealthAddr,
		LeaderElection:         false, // one agentd per node: nothing to elect
		Cache:                  cache.Options{ByObject: byObject},
		Logger:                 log,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	// Every process start is a new incarnation, even in the same pod: a random suffix makes the
	// restart sweep fail commands claimed by a previous container of the same pod too.
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	if deps.InstanceID == "" {
		deps.InstanceID = cfg.NodeName
	}
	deps.InstanceID += "/" + hex.EncodeToString(rnd)
	reg := deps.Registry
	if reg == nil {
		reg = crmetrics.Registry
	}

	pub, err := publish.New(publish.Options{
		NodeName:            cfg.NodeName,
		DefaultNamespace:    cfg.DefaultNamespace,
		Client:              mgr.GetClient(),
		APIReader:           mgr.GetAPIReader(),
		Logger:              log.WithName("publish"),
		MinInterval:         cfg.PublishMinInterval.Duration,
		MemoryThreshold:     threshold(cfg),
		FilesystemThreshold: threshold(cfg),
	})
	if err != nil {
		return nil, err
	}
	publish.MustRegister(reg)

	a := &Agent{Publisher: pub, Manager: mgr}
	b := &bridge{pub: pub, reader: mgr.GetAPIReader(), log: log.WithName("bridge"), executed: map[string][]gav1.ExecutedCommand{},
		events: mgr.GetEventRecorder("agentd"), defaultNS: cfg.DefaultNamespace, agents: map[string]agentLinks{}}

	var svc *service.GuestAgentService
	changed := func(uuid string) {
		if svc != nil {
			svc.Changed(uuid)
		}
	}
	var listener *oga.Listener
	var events *oga.GuestAgentEvents
	if cfg.EnableOvirtAgent {
		listener = oga.NewListener(oga.ListenerOptions{Log: log.WithName("oga"), OnChange: changed, Timing: deps.OGATiming})
		events = oga.NewGuestAgentEvents(listener, log.WithName("oga-events"), 0)
		oga.MustRegisterCollector(reg, listener)
	}
	svc = service.New(service.Options{
		Log:                  log.WithName("service"),
		Watcher:              deps.Watcher,
		QGA:                  deps.QGA,
		OGA:                  listener,
		Events:               events,
		PowerButton:          deps.PowerButton,
		LifecycleHooks:       cfg.LifecycleHooks,
		InitialOGAAPIVersion: b.ogaAPIVersion,
		OnChange:             b.onChange,
		OnRemove:             b.onRemove,
	})
	b.svc = svc
	a.Service, a.Listener = svc, listener
	if deps.QGAChanged != nil {
		*deps.QGAChanged = changed
	}
	service.MustRegisterCollector(reg, svc)

	exec := &execute.Executor{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		NodeName:   cfg.NodeName,
		InstanceID: deps.InstanceID,
		Service:    svc,
		History:    b,
	}
	if err := exec.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(pub.Run)); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(func(ctx context.Context) error { return watchDeletions(ctx, mgr.GetCache(), pub) })); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(svc.Run)); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(func(ctx context.Context) error { return b.cleanupAfterDiscovery(ctx, deps.Watcher) })); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("libvirt", func(*http.Request) error {
		if !svc.Ready() {
			return fmt.Errorf("libvirt connection is down")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return a, nil
}

func threshold(cfg config.Config) *publish.Threshold {
	t := publish.DefaultThreshold
	t.Relative = float64(cfg.MemoryChangePercent) / 100
	return &t
}

// Start runs agentd until ctx ends.
func (a *Agent) Start(ctx context.Context) error { return a.Manager.Start(ctx) }

// runnable adapts a Run function to a manager Runnable that runs on every replica.
type runnable func(ctx context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }
func (runnable) NeedLeaderElection() bool          { return false }

// bridge connects the service's change feed and the executor's history to the publisher.
type bridge struct {
	svc    *service.GuestAgentService
	pub    *publish.Publisher
	reader client.Reader
	log    logr.Logger

	events    events.EventRecorder
	defaultNS string

	mu       sync.Mutex
	executed map[string][]gav1.ExecutedCommand
	agents   map[string]agentLinks // last seen connection state, for transition Events
	// apiVersions caches the persisted oVirt API versions listed at startup.
	apiVersions map[string]int
}

// agentLinks is whether each agent of a domain was connected.
type agentLinks struct{ qga, oga bool }

func (b *bridge) onChange(v service.View) {
	b.mu.Lock()
	ex := append([]gav1.ExecutedCommand(nil), b.executed[v.Domain.UUID]...)
	prev, seen := b.agents[v.Domain.UUID]
	now := agentLinks{qga: v.QGA.Channel == guest.ChannelConnected, oga: v.OGA.Channel == guest.ChannelConnected}
	b.agents[v.Domain.UUID] = now
	b.mu.Unlock()
	if seen && v.Domain.Placement.Publish {
		b.transitionEvents(v, prev, now)
	}
	if err := b.pub.Upsert(Desired(v, ex)); err != nil {
		b.log.Error(err, "Cannot publish domain", "domainUUID", v.Domain.UUID)
	}
}

// transitionEvents emits one Event per agent connect/disconnect on the domain's status.
func (b *bridge) transitionEvents(v service.View, prev, now agentLinks) {
	ns := v.Domain.Placement.Namespace
	if ns == "" {
		ns = b.defaultNS
	}
	obj := &gav1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Name: publish.ObjectName(v.Domain.Name, v.Domain.UUID), Namespace: ns}}
	emit := func(was, is bool, agent string) {
		switch {
		case !was && is:
			b.events.Eventf(obj, nil, corev1.EventTypeNormal, "AgentConnected", "Connect", "%s connected", agent)
		case was && !is:
			b.events.Eventf(obj, nil, corev1.EventTypeWarning, "AgentDisconnected", "Disconnect", "%s disconnected", agent)
		}
	}
	emit(prev.qga, now.qga, "QEMU guest agent")
	emit(prev.oga, now.oga, "oVirt guest agent")
}

func (b *bridge) onRemove(d virt.Domain, migrated bool) {
	b.mu.Lock()
	delete(b.executed, d.UUID)
	delete(b.agents, d.UUID)
	b.mu.Unlock()
	remove := b.pub.Remove
	if migrated {
		remove = b.pub.Release
	}
	if err := remove(d.UUID); err != nil {
		b.log.Error(err, "Cannot remove domain", "domainUUID", d.UUID)
	}
}

// RecordExecuted implements execute.History: the key goes into the target's status history.
func (b *bridge) RecordExecuted(uuid string, ec gav1.ExecutedCommand) {
	b.mu.Lock()
	b.executed[uuid] = append(b.executed[uuid], ec)
	if n := len(b.executed[uuid]); n > gav1.MaxExecutedCommands {
		b.executed[uuid] = b.executed[uuid][n-gav1.MaxExecutedCommands:]
	}
	b.mu.Unlock()
	if v, ok := b.svc.View(uuid); ok {
		b.onChange(v)
	}
}

// ogaAPIVersion returns the negotiated oVirt agent version persisted in the domain's
// GuestAgentStatus (written by this node before a restart, or by the source node before a
// migration), so hooks can be sent at once. The first call lists every status once (startup:
// one request for all domains); a domain unknown then (migrated in later) costs one labelled
// list. The service calls it only when it starts talking to a domain's oVirt agent.
func (b *bridge) ogaAPIVersion(uuid string) int {
	b.mu.Lock()
	if b.apiVersions == nil {
		b.mu.Unlock()
		all := b.listAPIVersions()
		b.mu.Lock()
		if b.apiVersions == nil {
			b.apiVersions = all
		}
	}
	v, ok := b.apiVersions[uuid]
	b.mu.Unlock()
	if ok {
		return v
	}
	return b.listAPIVersions(client.MatchingLabels{gav1.LabelDomainUUID: uuid})[uuid]
}

func (b *bridge) listAPIVersions(opts ...client.ListOption) map[string]int {
	out := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list := &gav1.GuestAgentStatusList{}
	if err := b.reader.List(ctx, list, opts...); err != nil {
		b.log.Info("Cannot read persisted oVirt agent API versions; starting at 0", "reason", err.Error())
		return out
	}
	for _, s := range list.Items {
		if oa := s.Status.OvirtAgent; oa != nil && oa.APIVersion != nil {
			out[s.Spec.DomainUUID] = int(*oa.APIVersion)
		}
	}
	return out
}

// cleanupAfterDiscovery deletes the objects of domains that vanished while agentd was down, once
// libvirt is connected and the first listing of domains was delivered.
func (b *bridge) cleanupAfterDiscovery(ctx context.Context, w virt.Watcher) error {
	for !w.Synced() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Everything libvirt lists now plus everything the service already saw (a domain that
	// appeared since the listing must not lose its fresh object).
	present := b.svc.Domains()
	for _, d := range w.Domains() {
		present = append(present, d.UUID)
	}
	if err := b.pub.RemoveAllExcept(ctx, present); err != nil && ctx.Err() == nil {
		return err
	}
	<-ctx.Done()
	return nil
}
