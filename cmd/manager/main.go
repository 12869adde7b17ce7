// Command manager is the guestagent-operator controller manager: it reconciles
// GuestAgentCommand objects into requests for the right node (deadlines, TTL, events) and
// garbage-collects GuestAgentStatus objects of vanished nodes. It runs as a leader-elected
// Deployment; the node side is agentd.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/controllers"
	"guestagent.io/operator/internal/memlimit"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(gav1.AddToScheme(scheme))
}

type options struct {
	metricsAddr          string
	metricsSecure        bool
	probeAddr            string
	leaderElect          bool
	leaderElectNamespace string
	enableHTTP2          bool
	statusGCInterval     time.Duration
	commandDefaultTTL    time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0",
		"Address of the metrics endpoint, e.g. :8443 (https) or :8080 (http); 0 disables it.")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS with authentication and authorization (TokenReview/SubjectAccessReview).")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false,
		"Enable leader election, so only one replica reconciles at a time.")
	flag.StringVar(&o.leaderElectNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease (default: the pod's namespace).")
	flag.BoolVar(&o.enableHTTP2, "enable-http2", false,
		"Serve the metrics endpoint over HTTP/2 (off by default: HTTP/2 rapid-reset mitigation).")
	flag.DurationVar(&o.statusGCInterval, "status-gc-interval", controllers.DefaultStatusGCInterval,
		"Period of the sweep deleting GuestAgentStatus objects of deleted nodes; 0 or less disables the sweep (Node deletions are still handled at once).")
	flag.DurationVar(&o.commandDefaultTTL, "command-default-ttl", time.Duration(gav1.DefaultTTLSecondsAfterFinished)*time.Second,
		"TTL after completion of GuestAgentCommands without spec.ttlSecondsAfterFinished (the CRD defaults it, so this is a safety net; 0 means 1h).")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	memlimit.Apply(ctrl.Log.WithName("setup"))

	if err := run(o); err != nil {
		ctrl.Log.Error(err, "Manager exited with an error")
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.metricsSecure,
		TLSOpts:       tlsOpts,
	}
	if o.metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "guestagent-controller.guestagent.io",
		LeaderElectionNamespace:       o.leaderElectNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	ctx := ctrl.SetupSignalHandler()
	gcInterval := o.statusGCInterval
	if gcInterval <= 0 {
		gcInterval = -1 // controllers.Options: negative disables the sweep
	}
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		StatusGCInterval:  gcInterval,
		CommandDefaultTTL: o.commandDefaultTTL,
	}); err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}
	log.Info("Starting manager", "leaderElection", o.leaderElect, "metrics", o.metricsAddr,
		"statusGCInterval", o.statusGCInterval.String())
	return mgr.Start(ctx)
}
