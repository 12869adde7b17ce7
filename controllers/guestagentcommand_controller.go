package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// indexCommandTarget indexes GuestAgentCommands by spec.target, to find the commands of a status.
const indexCommandTarget = "spec.target"

// conflictRetry is how soon a reconcile that lost an optimistic-locking race runs again (the
// watch event of the winning write usually triggers it sooner).
const conflictRetry = time.Second

// errConflict is returned by phases that lost an optimistic-locking race; the reconcile stops
// without writing and runs again.
var errConflict = errors.New("object changed concurrently")

// GuestAgentCommandReconciler validates GuestAgentCommands, schedules them to the node of their
// target GuestAgentStatus, re-targets them while unclaimed, enforces deadlines, reports outcomes
// and deletes finished commands after their TTL. agentd executes them (docs/commands.md).
type GuestAgentCommandReconciler struct {
	// Client reads from the manager's cache and writes to the apiserver.
	Client client.Client
	// APIReader reads Nodes live (only when a target names another node than its command's
	// without a release) and confirms a target the cache does not have; nil means Client.
	APIReader client.Reader
	// Recorder emits events.k8s.io Events.
	Recorder events.EventRecorder
	// Clock tells the time; nil means the real clock.
	Clock clock.PassiveClock
	// DefaultTTL replaces a nil spec.ttlSecondsAfterFinished (the CRD defaults it, so this is a
	// safety net); zero means gav1.DefaultTTLSecondsAfterFinished.
	DefaultTTL time.Duration
	// MaxTargetBackoff caps the requeue interval while the target is missing; zero means 30s. A
	// new target also triggers a reconcile through the status watch, so this is a safety net.
	MaxTargetBackoff time.Duration
}

// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentcommands,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentcommands/status,verbs=patch
// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentstatuses,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler, its field index and watches with mgr.
func (r *GuestAgentCommandReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if r.Client == nil || r.Recorder == nil {
		return errors.New("GuestAgentCommandReconciler needs a Client and a Recorder")
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.DefaultTTL == 0 {
		r.DefaultTTL = time.Duration(gav1.DefaultTTLSecondsAfterFinished) * time.Second
	}
	if r.MaxTargetBackoff == 0 {
		r.MaxTargetBackoff = 30 * time.Second
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &gav1.GuestAgentCommand{}, indexCommandTarget,
		func(o client.Object) []string { return []string{o.(*gav1.GuestAgentCommand).Spec.Target} }); err != nil {
		return fmt.Errorf("indexing GuestAgentCommands by target: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("guestagentcommand").
		For(&gav1.GuestAgentCommand{}).
		// A target that appears, migrates (spec.nodeName) or goes away affects its commands.
		// Status-only writes of agentd do not bump the generation and are filtered out.
		Watches(&gav1.GuestAgentStatus{}, handler.EnqueueRequestsFromMapFunc(r.commandsForTarget),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(opts).
		Complete(r)
}

// commandsForTarget maps a GuestAgentStatus to the commands in its namespace that target it.
func (r *GuestAgentCommandReconciler) commandsForTarget(ctx context.Context, o client.Object) []reconcile.Request {
	var list gav1.GuestAgentCommandList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{indexCommandTarget: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing commands of a target", "guestAgentStatus", klog.KObj(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if !list.Items[i].Status.Phase.IsTerminal() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// Reconcile moves one GuestAgentCommand along Pending → Scheduled (→ Running and the outcome,
// written by agentd) and handles deadline, outcome reporting and TTL.
func (r *GuestAgentCommandReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, reterr error) {
	cmd := &gav1.GuestAgentCommand{}
	if err := r.Client.Get(ctx, req.NamespacedName, cmd); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !cmd.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	// Terminal states are never written again: only report them once and expire them.
	if cmd.Status.Phase.IsTerminal() {
		return r.reconcileFinished(ctx, cmd)
	}

	s := &commandScope{cmd: cmd, before: cmd.DeepCopy(), now: r.Clock.Now()}
	defer func() {
		res, reterr = r.patchStatus(ctx, s, res, reterr)
	}()
	return r.reconcilePhases(ctx, s)
}

// patchStatus writes the status the phases computed, with an optimistic lock, and then emits the
// Events of the transitions it made. It runs deferred, whatever the phases returned.
func (r *GuestAgentCommandReconciler) patchStatus(ctx context.Context, s *commandScope, res ctrl.Result, reterr error) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	if s.abort {
		return res, reterr
	}
	if reterr == nil || errors.Is(reterr, reconcile.TerminalError(nil)) {
		s.cmd.Status.ObservedGeneration = s.cmd.Generation
	}
	if equality.Semantic.DeepEqual(s.before.Status, s.cmd.Status) {
		return res, reterr
	}
	patch := client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Status().Patch(ctx, s.cmd, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			log.V(1).Info("Command changed while reconciling, retrying", "error", err.Error())
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("patching status of GuestAgentCommand: %w", err)
	}
	if from, to := s.before.Status.Phase, s.cmd.Status.Phase; from != to {
		log.Info("Command phase changed", "from", from, "to", to, "reason", s.cmd.Status.Reason, "node", s.cmd.Status.NodeName)
	}
	for _, e := range s.events {
		r.Recorder.Eventf(s.cmd, nil, e.eventType, e.reason, e.action, "%s", e.note)
	}
	return res, reterr
}
