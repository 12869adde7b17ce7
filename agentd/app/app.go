// Package app assembles agentd from its parts: the libvirt watcher, the QEMU guest agent poller,
// libvirt's memory statistics poller, the oVirt guest agent Listener, GuestAgentService, the GuestAgentStatus publisher and the
// GuestAgentCommand executor, on a controller-runtime manager whose cache holds only this node's
// objects. cmd/agentd builds the libvirt-backed parts and calls Run; tests call Run with the
// libvirt test driver or fakes in their place.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/execute"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/publish"
	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/virt"
)

// Deps are the node-side parts that depend on libvirt; tests substitute them.
type Deps struct {
	Watcher     virt.Watcher
	QGA         service.QemuAgent
	PowerButton service.PowerButton
	// VCPUs reads libvirt domains' vCPU counts for SetVCPUs; nil leaves the check to the agents.
	VCPUs service.DomainVCPUs
	// Save is libvirt's managed save (Hibernate); nil disables it.
	Save service.HostSave
	// Memory is libvirt's memory statistics source (a memstats.Poller); nil disables it.
	Memory service.HostMemory
	// OGATiming overrides the oVirt agent's timing (tests); zero takes VDSM's values.
	OGATiming oga.Timing
	// Registry receives agentd's metrics (default controller-runtime's registry).
	Registry prometheus.Registerer
	// InstanceID prefixes this incarnation's identity (e.g. the pod UID; default the node name);
	// a random suffix is always added.
	InstanceID string
	// Controller is the manager's controller configuration. Tests that run several agentds in
	// one process set SkipNameValidation (controller names are unique per process otherwise).
	Controller crconfig.Controller
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
	byObject := publish.CacheByObject(cfg.NodeName)
	for obj, bo := range byObject { // the deletion watch keeps metadata only, without managedFields
		bo.Transform = cache.TransformStripManagedFields()
		byObject[obj] = bo
	}
	maps.Copy(byObject, execute.CacheByObject(cfg.NodeName))
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress: cfg.HealthAddr,
		PprofBindAddress:       cfg.PprofAddr,
		LeaderElection:         false, // one agentd per node: nothing to elect
		Cache:                  cache.Options{ByObject: byObject},
		Controller:             deps.Controller,
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

	pubQPS, pubBurst := cfg.PublishLimits()
	pub, err := publish.New(publish.Options{
		NodeName:            cfg.NodeName,
		DefaultNamespace:    cfg.DefaultNamespace,
		Client:              mgr.GetClient(),
		APIReader:           mgr.GetAPIReader(),
		Logger:              log.WithName("publish"),
		MinInterval:         cfg.PublishMinInterval.Duration,
		WriteQPS:            pubQPS,
		WriteBurst:          pubBurst,
		MemoryThreshold:     threshold(cfg),
		FilesystemThreshold: threshold(cfg),
		Events:              mgr.GetEventRecorder("agentd"),
	})
	if err != nil {
		return nil, err
	}
	publish.MustRegister(reg)

	a := &Agent{Publisher: pub, Manager: mgr}
	b := &bridge{pub: pub, log: log.WithName("bridge")}

	opts := service.Options{
		Log:            log.WithName("service"),
		Watcher:        deps.Watcher,
		QGA:            deps.QGA,
		Memory:         deps.Memory,
		PowerButton:    deps.PowerButton,
		VCPUs:          deps.VCPUs,
		Save:           deps.Save,
		LifecycleHooks: cfg.LifecycleHooks,
		TimeSync:       cfg.TimeSync,
		OGAVersions:    pub,
		OnChange:       b.onChange,
		OnRemove:       b.onRemove,
	}
	if cfg.EnableOvirtAgent {
		a.Listener, opts.OGA = newOGA(oga.ListenerOptions{Log: log.WithName("oga"), Timing: deps.OGATiming})
		opts.Events = oga.NewGuestAgentEvents(a.Listener, log.WithName("oga-events"), 0)
		oga.MustRegisterCollector(reg, a.Listener)
	}
	svc := service.New(opts)
	b.svc, a.Service = svc, svc
	service.MustRegisterCollector(reg, svc)

	exec := &execute.Executor{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		NodeName:   cfg.NodeName,
		InstanceID: deps.InstanceID,
		Service:    svc,
		History:    pub,
	}
	if err := exec.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(pub.Run)); err != nil {
		return nil, err
	}
	if err := mgr.Add(runnable(func(ctx context.Context) error { return watchStatusChanges(ctx, mgr.GetCache(), pub) })); err != nil {
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

// bridge hands the service's change feed to the publisher.
type bridge struct {
	svc *service.GuestAgentService
	pub *publish.Publisher
	log logr.Logger
}

func (b *bridge) onChange(v service.View) {
	if err := b.pub.Upsert(Desired(v)); err != nil {
		b.log.Error(err, "Cannot publish domain", "domainUUID", v.Domain.UUID)
	}
}

func (b *bridge) onRemove(d virt.Domain, migrated bool) {
	remove := b.pub.Remove
	if migrated {
		remove = b.pub.Release
	}
	if err := remove(d.UUID); err != nil {
		b.log.Error(err, "Cannot remove domain", "domainUUID", d.UUID)
	}
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
