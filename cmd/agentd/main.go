// Command agentd is the node agent of guestagent-operator. One instance runs per node
// (DaemonSet): it talks to libvirt on its node, serves the QEMU and oVirt guest agents of every
// domain, publishes one GuestAgentStatus per domain and executes the GuestAgentCommands
// scheduled to its node. The parts are assembled by agentd/app; this file builds the
// libvirt-backed ones.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"guestagent.io/operator/agentd/app"
	"guestagent.io/operator/agentd/config"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/memlimit"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(gav1.AddToScheme(scheme))
}

func main() {
	fs := flag.NewFlagSet("agentd", flag.ExitOnError)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	cfg, err := config.Load(fs, os.Args[1:])
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "agentd: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	memlimit.Apply(ctrl.Log.WithName("agentd"))
	if err := run(ctrl.SetupSignalHandler(), cfg, ctrl.Log.WithName("agentd").WithValues("node", cfg.NodeName)); err != nil {
		ctrl.Log.Error(err, "Stopping agentd after an error")
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, log logr.Logger) error {
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	if err := virt.EnsureEventLoop(); err != nil {
		return fmt.Errorf("starting the libvirt event loop: %w", err)
	}
	watcher := virt.NewManager(virt.Config{URI: cfg.LibvirtURI, Log: log.WithName("virt")})
	qgaAgent, err := app.NewQGA(qga.Config{
		API:     qga.Instrument(qga.NewLibvirtAPI(watcher.LookupDomain)),
		Domains: watcher.Domains,
		Periods: qga.Periods{
			Caps:  cfg.Poll.Capabilities.Duration,
			Users: cfg.Poll.Users.Duration,
			Sys:   cfg.Poll.System.Duration,
			CPUs:  cfg.Poll.CPUs.Duration,
			Disks: cfg.Poll.Disks.Duration,
			Stats: qga.StatsPeriod(cfg.Poll.Stats.Duration),
		},
		BootWindow:      cfg.Poll.BootWindow.Duration,
		CallTimeout:     cfg.Poll.CallTimeout.Duration,
		FailureThrottle: cfg.Poll.FailureDelay.Duration,
		Workers:         cfg.PollWorkers,
		Log:             log.WithName("qga"),
	})
	if err != nil {
		return fmt.Errorf("creating the QEMU guest agent poller: %w", err)
	}
	qga.MustRegisterMetrics(crmetrics.Registry)
	virt.MustRegisterMetrics(crmetrics.Registry)
	agent, err := app.Build(cfg, restCfg, scheme, app.Deps{
		Watcher:     watcher,
		QGA:         qgaAgent,
		PowerButton: virt.PowerButton{M: watcher},
		InstanceID:  os.Getenv("POD_UID"),
	}, log)
	if err != nil {
		return err
	}
	log.Info("Starting agentd", "libvirtURI", cfg.LibvirtURI, "defaultNamespace", cfg.DefaultNamespace)
	if err := agent.Start(ctx); err != nil {
		return err
	}
	log.Info("Stopped agentd")
	return nil
}
