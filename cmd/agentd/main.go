// Command agentd is the node agent of guestagent-operator. One instance runs per node
// (DaemonSet): it talks to libvirt on its node, serves the QEMU and oVirt guest agents of every
// domain, publishes one GuestAgentStatus per domain and executes the GuestAgentCommands
// scheduled to its node.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"guestagent.io/operator/agentd/config"
	gav1 "guestagent.io/operator/api/v1alpha1"
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
	if err := run(ctrl.SetupSignalHandler(), cfg); err != nil {
		ctrl.Log.Error(err, "agentd exited with an error")
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config) error {
	log := ctrl.Log.WithName("agentd").WithValues("node", cfg.NodeName)
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	restCfg.QPS = cfg.QPS
	restCfg.Burst = cfg.Burst
	restCfg.UserAgent = "guestagent-agentd/" + cfg.NodeName

	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress: cfg.HealthAddr,
		LeaderElection:         false, // one agentd per node: nothing to elect
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("Starting agentd", "libvirtURI", cfg.LibvirtURI, "defaultNamespace", cfg.DefaultNamespace)
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	log.Info("agentd stopped")
	return nil
}
