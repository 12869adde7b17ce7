package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
)

// Defaults of Options.
const (
	DefaultStatusGCInterval = 10 * time.Minute
	// EventRecorderName is the reportingController of the Events the controllers emit.
	EventRecorderName = "guestagent-controller"
	// DefaultCommandReconciles is how many GuestAgentCommands are reconciled at once. Each
	// command costs the controller two status writes and two Events (scheduling, outcome): with
	// one reconcile at a time, a tenant's burst of thousands of commands queues every other
	// tenant's command behind it for tens of seconds.
	DefaultCommandReconciles = 8
)

// Options configure the controllers that Setup registers.
type Options struct {
	// StatusGCInterval is the period of the sweep for statuses of deleted nodes; zero means
	// DefaultStatusGCInterval, negative disables the sweep (Node deletions are still handled).
	StatusGCInterval time.Duration
	// CommandDefaultTTL applies to commands without spec.ttlSecondsAfterFinished (the CRD
	// defaults it to one hour, so this rarely matters); zero means one hour.
	CommandDefaultTTL time.Duration
	// Controller options shared by both controllers (concurrency, name validation, …). A zero
	// MaxConcurrentReconciles means DefaultCommandReconciles for the GuestAgentCommand controller
	// (and controller-runtime's default, 1, for the status garbage collector).
	Controller controller.Options
	// Clock for deadlines and TTLs; nil means the real clock (tests may inject one).
	Clock clock.PassiveClock
}

// Setup registers the GuestAgentCommand reconciler, the status garbage collector and its
// periodic sweep with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) error {
	if o.StatusGCInterval == 0 {
		o.StatusGCInterval = DefaultStatusGCInterval
	}
	cmdR := &GuestAgentCommandReconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Recorder:   mgr.GetEventRecorder(EventRecorderName),
		Clock:      o.Clock,
		DefaultTTL: o.CommandDefaultTTL,
	}
	cmdOpts := o.Controller
	if cmdOpts.MaxConcurrentReconciles == 0 {
		cmdOpts.MaxConcurrentReconciles = DefaultCommandReconciles
	}
	if err := cmdR.SetupWithManager(ctx, mgr, cmdOpts); err != nil {
		return fmt.Errorf("setting up the GuestAgentCommand controller: %w", err)
	}
	gcR := &StatusGCReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	if err := gcR.SetupWithManager(mgr, o.Controller); err != nil {
		return fmt.Errorf("setting up the status garbage collector: %w", err)
	}
	if o.StatusGCInterval > 0 {
		sw := &StatusSweeper{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Interval: o.StatusGCInterval}
		if err := mgr.Add(sw); err != nil {
			return fmt.Errorf("adding the status sweeper: %w", err)
		}
	}
	return nil
}
