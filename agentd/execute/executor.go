// Package execute owns the GuestAgentCommand executor of one node: it watches only the commands
// the controller scheduled to this node, queues them fairly (round-robin across namespaces, then
// across the targets of a namespace, one command per target at a time: see fairQueue), claims
// each with an optimistic-locked status write before it touches the guest, executes it through
// GuestAgentService, and writes the outcome.
//
// API calls per command: the claim (which also moves it to Running) and the outcome; the target
// GuestAgentStatus is read uncached once per burst of commands of that target (a read is reused
// for TargetReuse, with the commands executed meanwhile added to its history).
//
// Delivery is at most once:
//   - a claim is a status update carrying the resourceVersion the executor read; a conflict
//     means someone else (another incarnation, the controller's deadline) changed the command
//     first, and the executor does nothing;
//   - on start, before claiming anything, every command of this node still Running was claimed
//     by a previous agentd incarnation: it is failed with reason AgentRestarted, never re-sent;
//   - a command whose key (namespace/name/spec hash) is already in the target's executed history
//     finishes as Succeeded/AlreadyExecuted without touching the guest (GitOps re-creation);
//   - this incarnation remembers every command it claimed, so a stale cache or a repeated event
//     never executes one twice; a claim whose reply was lost (the API server went away after
//     applying it) is confirmed by an uncached read and then executed, not left Running.
//
// Nothing is lost when the API server is unreachable: an outcome is kept in memory and its write
// retried with backoff until the API server answers (or this agentd stops, and its successor's
// sweep reports AgentRestarted).
package execute

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/service"
	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/cachetrim"
)

// Service executes requests against a domain's guest (GuestAgentService).
type Service interface {
	Execute(ctx context.Context, uuid string, req service.Request) (service.Result, error)
	// WatchPower delivers a domain's power changes (shut off, rebooted) as libvirt reports them.
	WatchPower(uuid string) (*service.PowerWatch, bool)
	// HostPower takes a host-side step of a power policy (ACPI, Destroy).
	HostPower(ctx context.Context, uuid string, action gav1.Action, m gav1.PowerMethod) error
}

// History records executed commands in the target's GuestAgentStatus (the publisher).
type History interface {
	RecordExecuted(uuid string, ec gav1.ExecutedCommand)
}

// Executor executes this node's GuestAgentCommands.
type Executor struct {
	// Client reads through a cache scoped to this node's objects and writes to the API server.
	Client client.Client
	// APIReader reads uncached (startup sweep, targets, lost replies).
	APIReader client.Reader
	NodeName  string
	// InstanceID identifies this agentd incarnation in status.claimedBy.
	InstanceID string
	Service    Service
	History    History
	// MaxConcurrent bounds commands executed at once (on different targets: a target runs one
	// command at a time). Default 4.
	MaxConcurrent int
	// TargetReuse is how long an uncached read of a target serves the next commands of the same
	// target (default 2s; negative reads the target for every command).
	TargetReuse time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// After waits on the same clock as Now (default time.After): the grace periods of power steps.
	After func(d time.Duration) <-chan time.Time

	sweepOnce sync.Once
	swept     chan struct{}
	queue     *fairQueue

	mu sync.Mutex
	// claimed holds the commands this incarnation claimed (or is claiming), by UID, with their
	// deadline; entries are pruned an hour after it.
	claimed map[types.UID]time.Time
	// targets holds recent uncached reads of targets (see TargetReuse), by namespace/name.
	targets map[types.NamespacedName]targetRead
	// failures counts the consecutive errors of a command, for its retry backoff.
	failures map[types.NamespacedName]int
}

// targetRead is a target as read from the API server, with the commands executed since.
type targetRead struct {
	gas *gav1.GuestAgentStatus
	at  time.Time
}

// Backoff of writes retried while the API server is unreachable.
const (
	retryMin = 250 * time.Millisecond
	retryMax = 2 * time.Second
)

// SetupWithManager registers the executor: a startup sweep runnable and the dispatcher, which
// queues this node's commands from the manager's GuestAgentCommand informer and executes them
// with MaxConcurrent workers. The manager's cache must be scoped to this node's commands (see
// CacheByObject); commands of other nodes are ignored anyway.
func (e *Executor) SetupWithManager(mgr ctrl.Manager) error {
	if e.APIReader == nil {
		e.APIReader = mgr.GetAPIReader()
	}
	e.setDefaults()
	if err := mgr.Add(sweepRunnable{e}); err != nil {
		return err
	}
	return mgr.Add(dispatcher{e: e, cache: mgr.GetCache(), log: mgr.GetLogger().WithName("executor")})
}

// setDefaults fills the zero options and the claim bookkeeping.
func (e *Executor) setDefaults() {
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.After == nil {
		e.After = time.After
	}
	if e.MaxConcurrent == 0 {
		e.MaxConcurrent = 4
	}
	if e.TargetReuse == 0 {
		e.TargetReuse = 2 * time.Second
	}
	e.swept = make(chan struct{})
	e.queue = newFairQueue()
	e.claimed = map[types.UID]time.Time{}
	e.targets = map[types.NamespacedName]targetRead{}
	e.failures = map[types.NamespacedName]int{}
}

// mine reports whether the controller scheduled the command to this node (status.nodeName, which
// tenants cannot write; the cache selects by it too).
func (e *Executor) mine(o client.Object) bool {
	cmd, ok := o.(*gav1.GuestAgentCommand)
	return ok && cmd.Status.NodeName == e.NodeName
}

// CacheByObject returns the cache.Options.ByObject entry of agentd's GuestAgentCommand informer:
// only the commands the controller scheduled to node (field selector status.nodeName, a
// selectable field of the CRD), without the metadata agentd never reads (managedFields,
// annotations, labels), so a tenant's commands for other nodes, or fat ones for this node, cost
// agentd no memory.
func CacheByObject(node string) map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&gav1.GuestAgentCommand{}: {
			Field:     fields.OneTermEqualSelector(FieldNodeName, node),
			Transform: cachetrim.Metadata(true),
		},
	}
}

// FieldNodeName is the selectable field of GuestAgentCommands naming the node they are scheduled to.
const FieldNodeName = "status.nodeName"

type sweepRunnable struct{ e *Executor }

// Start fails commands left Running by a previous incarnation, then lets Reconcile claim.
func (s sweepRunnable) Start(ctx context.Context) error {
	defer s.e.sweepOnce.Do(func() { close(s.e.swept) })
	return s.e.sweep(ctx)
}

// NeedLeaderElection: every node's agentd sweeps its own commands.
func (sweepRunnable) NeedLeaderElection() bool { return false }

func (e *Executor) sweep(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("executor")
	list := &gav1.GuestAgentCommandList{}
	for {
		err := e.APIReader.List(ctx, list, client.MatchingFields{FieldNodeName: e.NodeName})
		if err == nil {
			break
		}
		log.Error(err, "Listing this node's commands for the restart sweep; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	for i := range list.Items {
		cmd := &list.Items[i]
		if cmd.Status.Phase != gav1.PhaseRunning || cmd.Status.ClaimedBy == e.InstanceID {
			continue
		}
		msg := fmt.Sprintf("agentd restarted while the command was running (claimed by %s); it is not re-sent, "+
			"so it may or may not have reached the guest", cmd.Status.ClaimedBy)
		if steps := cmd.Status.PowerSteps; len(steps) > 0 || gav1.IsPolicyAction(cmd.Spec.Action) || cmd.Spec.Action == gav1.ActionHibernate {
			// A power policy (or a Hibernate) is not continued: the step in flight at the restart may or may not
			// have been sent, and its grace period is lost. Create a new command to try again.
			msg = fmt.Sprintf("agentd restarted during the power policy (claimed by %s); the policy is not continued. "+
				"Steps recorded before the restart: %s. A step after the last recorded one may have been sent; "+
				"create a new command to try again", cmd.Status.ClaimedBy, summarize(steps))
		}
		e.finish(cmd, false, gav1.ReasonAgentRestarted, msg, nil)
		err := retryTransient(ctx, log, "failing a command left running", func() error {
			return e.Client.Status().Update(ctx, cmd)
		})
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("failing command %s left running: %w", client.ObjectKeyFromObject(cmd), err)
		}
		log.Info("Failed command left running by a previous agentd", "guestAgentCommand", klog.KObj(cmd))
	}
	return nil
}

// permanent reports API errors that retrying the same request cannot fix. A 404 without an API
// status (a path not served yet, as while a restarting API server installs its custom resource
// handlers) is not the object's absence: it is retried.
func permanent(err error) bool {
	return (apierrors.IsNotFound(err) && !apierrors.IsUnexpectedServerError(err)) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) ||
		apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		apierrors.IsMethodNotSupported(err) || apierrors.IsRequestEntityTooLargeError(err) ||
		errors.Is(err, context.Canceled)
}

// retryTransient calls write until it succeeds, fails permanently, or ctx ends, backing off
// while the API server is unreachable or overloaded. It logs the outage and the recovery once.
func retryTransient(ctx context.Context, log logr.Logger, what string, write func() error) error {
	delay := retryMin
	failing := false
	for {
		err := write()
		if err == nil || permanent(err) || ctx.Err() != nil {
			if failing && err == nil {
				log.Info("API server answers again; write done", "write", what)
			}
			return err
		}
		if !failing {
			log.Info("API server unreachable; retrying until it answers", "write", what, "error", err.Error())
			failing = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, retryMax)
	}
}

// claim records that this incarnation takes cmd; false if it already did.
func (e *Executor) claim(cmd *gav1.GuestAgentCommand) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.Now()
	for uid, deadline := range e.claimed {
		if now.After(deadline.Add(time.Hour)) {
			delete(e.claimed, uid)
		}
	}
	if _, ok := e.claimed[cmd.UID]; ok {
		return false
	}
	e.claimed[cmd.UID] = e.deadline(cmd)
	return true
}

// unclaim forgets a claim that did not happen (conflict, or an error before the guest was touched).
func (e *Executor) unclaim(cmd *gav1.GuestAgentCommand) {
	e.mu.Lock()
	delete(e.claimed, cmd.UID)
	e.mu.Unlock()
}

// claimedHere reports whether this incarnation claimed cmd.
func (e *Executor) claimedHere(cmd *gav1.GuestAgentCommand) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.claimed[cmd.UID]
	return ok
}

// Reconcile claims and executes one Scheduled command of this node.
func (e *Executor) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	select {
	case <-e.swept:
	case <-ctx.Done():
		return ctrl.Result{}, nil
	}
	log := ctrl.LoggerFrom(ctx)
	cmd := &gav1.GuestAgentCommand{}
	if err := e.Client.Get(ctx, req.NamespacedName, cmd); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !e.mine(cmd) || cmd.Status.NodeName != e.NodeName {
		return ctrl.Result{}, nil
	}
	resume := false
	switch {
	case cmd.Status.Phase == gav1.PhaseScheduled:
		if e.claimedHere(cmd) {
			return ctrl.Result{}, nil // a stale cache: this incarnation claimed it already
		}
	case cmd.Status.Phase == gav1.PhaseRunning && cmd.Status.ClaimedBy == e.InstanceID && !e.claimedHere(cmd):
		// Our claim was applied but its reply was lost (the API server went away): confirm with an
		// uncached read, then execute; the guest has not been touched by this incarnation.
		fresh := &gav1.GuestAgentCommand{}
		if err := e.APIReader.Get(ctx, req.NamespacedName, fresh); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if fresh.UID != cmd.UID || fresh.Status.Phase != gav1.PhaseRunning || fresh.Status.ClaimedBy != e.InstanceID {
			return ctrl.Result{}, nil
		}
		cmd, resume = fresh, true
	default:
		return ctrl.Result{}, nil
	}
	if e.pastDeadline(cmd) {
		return ctrl.Result{}, nil // the controller fails it; never start late
	}
	target, err := e.target(ctx, cmd)
	if apierrors.IsNotFound(err) {
		// Not (or no longer) on this node: the controller re-targets it.
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	uuid := target.Spec.DomainUUID
	if cmd.Status.DomainUUID != "" && cmd.Status.DomainUUID != uuid {
		e.forgetTarget(cmd)
		return ctrl.Result{}, e.complete(ctx, cmd, false, gav1.ReasonDomainNotFound,
			fmt.Sprintf("target %s now names domain %s, not %s", cmd.Spec.Target, uuid, cmd.Status.DomainUUID), nil)
	}
	key := gav1.CommandKey(cmd)
	if !resume && gav1.HasExecuted(target, key) {
		return ctrl.Result{}, e.complete(ctx, cmd, true, gav1.ReasonAlreadyExecuted,
			"a command with the same name and spec was already executed on this domain; not repeated (use a new name to repeat it)", nil)
	}
	if !e.claim(cmd) {
		return ctrl.Result{}, nil
	}
	if resume {
		log.Info("Claim confirmed after its reply was lost", "guestAgentCommand", klog.KObj(cmd))
	} else if err := e.claimInAPI(ctx, cmd, uuid); err != nil {
		e.unclaim(cmd)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			log.V(1).Info("Command claimed or changed by someone else; not executing", "guestAgentCommand", klog.KObj(cmd))
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	log.Info("Executing command", "guestAgentCommand", klog.KObj(cmd), "action", cmd.Spec.Action, "domainUUID", uuid)

	executed := gav1.ExecutedCommand{Key: key, Action: cmd.Spec.Action}
	if gav1.IsPolicyAction(cmd.Spec.Action) || cmd.Spec.Action == gav1.ActionHibernate {
		var out powerOutcome
		if cmd.Spec.Action == gav1.ActionHibernate {
			out = e.runHibernate(ctx, cmd, uuid)
		} else {
			out = e.runPower(ctx, cmd, uuid)
		}
		if out.aborted {
			return ctrl.Result{}, nil // the command changed under us, or agentd stops: its successor's sweep reports it
		}
		if out.touched {
			// The guest (or libvirt) was asked, whatever the outcome: a re-created command must
			// not run the policy again.
			executed.Time = metav1.NewTime(e.Now())
			e.executedOn(cmd, executed)
			if e.History != nil {
				e.History.RecordExecuted(uuid, executed)
			}
		}
		if out.reason == gav1.ReasonDomainNotFound {
			e.forgetTarget(cmd)
		}
		return ctrl.Result{}, e.complete(ctx, cmd, out.ok, out.reason, out.msg, out.agents)
	}

	execCtx, cancel := context.WithTimeout(ctx, e.timeout(cmd))
	res, xerr := e.Service.Execute(execCtx, uuid, service.Request{Spec: cmd.Spec})
	cancel()
	if xerr != nil {
		reason := gav1.ReasonAgentError
		var ee *service.ExecError
		if errors.As(xerr, &ee) {
			reason = ee.Reason
		} else if errors.Is(xerr, context.DeadlineExceeded) {
			reason = gav1.ReasonAgentTimeout
		}
		if reason == gav1.ReasonDomainNotFound {
			e.forgetTarget(cmd) // the domain left: read the target again for the next command
		}
		return ctrl.Result{}, e.complete(ctx, cmd, false, reason, xerr.Error(), res.Agents)
	}
	executed.Time = metav1.NewTime(e.Now())
	e.executedOn(cmd, executed)
	if e.History != nil {
		e.History.RecordExecuted(uuid, executed)
	}
	return ctrl.Result{}, e.complete(ctx, cmd, true, gav1.ReasonCompleted, res.Message, res.Agents)
}

// target returns cmd's target GuestAgentStatus, read uncached (fresh history for the
// at-most-once check, and no informer holding every full status of the node in memory). A read
// younger than TargetReuse is reused, with the commands this executor executed since added to its
// history; the commands of one target run one at a time, so a burst of them costs one read.
func (e *Executor) target(ctx context.Context, cmd *gav1.GuestAgentCommand) (*gav1.GuestAgentStatus, error) {
	key := types.NamespacedName{Namespace: cmd.Namespace, Name: cmd.Spec.Target}
	now := e.Now()
	e.mu.Lock()
	for k, r := range e.targets {
		if now.Sub(r.at) >= e.TargetReuse || now.Before(r.at) {
			delete(e.targets, k)
		}
	}
	r, ok := e.targets[key]
	e.mu.Unlock()
	if ok {
		return r.gas, nil
	}
	gas := &gav1.GuestAgentStatus{}
	if err := e.APIReader.Get(ctx, key, gas); err != nil {
		return nil, err
	}
	if e.TargetReuse > 0 {
		e.mu.Lock()
		e.targets[key] = targetRead{gas: gas, at: now}
		e.mu.Unlock()
	}
	return gas, nil
}

// executedOn adds an executed command to the reused read of cmd's target, if any.
func (e *Executor) executedOn(cmd *gav1.GuestAgentCommand, ec gav1.ExecutedCommand) {
	key := types.NamespacedName{Namespace: cmd.Namespace, Name: cmd.Spec.Target}
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.targets[key]; ok {
		gas := r.gas.DeepCopy()
		gas.Status.ExecutedCommands = append(gas.Status.ExecutedCommands, ec)
		e.targets[key] = targetRead{gas: gas, at: r.at}
	}
}

// forgetTarget drops the reused read of cmd's target.
func (e *Executor) forgetTarget(cmd *gav1.GuestAgentCommand) {
	e.mu.Lock()
	delete(e.targets, types.NamespacedName{Namespace: cmd.Namespace, Name: cmd.Spec.Target})
	e.mu.Unlock()
}

// claimInAPI marks cmd Running and claimed by this incarnation: an optimistic-locked status update
// (a conflict means someone else acted first).
func (e *Executor) claimInAPI(ctx context.Context, cmd *gav1.GuestAgentCommand, uuid string) error {
	now := metav1.NewTime(e.Now())
	cmd.Status.Phase = gav1.PhaseRunning
	cmd.Status.ClaimedBy = e.InstanceID
	cmd.Status.StartTime = &now
	cmd.Status.DomainUUID = uuid
	cmd.Status.Reason = gav1.ReasonRunning
	cmd.Status.Message = "agentd is executing the command"
	meta.SetStatusCondition(&cmd.Status.Conditions, metav1.Condition{Type: gav1.ConditionSucceeded,
		Status: metav1.ConditionUnknown, Reason: gav1.ReasonRunning, Message: "executing", ObservedGeneration: cmd.Generation})
	return e.Client.Status().Update(ctx, cmd)
}

func (e *Executor) deadline(cmd *gav1.GuestAgentCommand) time.Time {
	d := ptr.Deref(cmd.Spec.DeadlineSeconds, gav1.DefaultDeadlineSeconds)
	return cmd.CreationTimestamp.Add(time.Duration(d) * time.Second)
}

func (e *Executor) pastDeadline(cmd *gav1.GuestAgentCommand) bool {
	return !e.Now().Before(e.deadline(cmd))
}

// timeout bounds one execution: the time left to the deadline, at most 2 minutes (a hook's wait
// is bounded by its own timeout, which the CRD caps at 10 minutes).
func (e *Executor) timeout(cmd *gav1.GuestAgentCommand) time.Duration {
	left := e.deadline(cmd).Sub(e.Now())
	limit := 2 * time.Minute
	if h := cmd.Spec.Hook; h != nil {
		limit = time.Duration(ptr.Deref(h.TimeoutSeconds, gav1.DefaultHookTimeoutSeconds))*time.Second + 5*time.Second
	}
	if left < limit {
		return left
	}
	return limit
}

// finish fills a terminal outcome into cmd's status.
func (e *Executor) finish(cmd *gav1.GuestAgentCommand, ok bool, reason, msg string, agents []gav1.AgentType) {
	now := metav1.NewTime(e.Now())
	if len(msg) > 2048 {
		msg = msg[:2045] + "..."
	}
	cmd.Status.Phase = gav1.PhaseFailed
	status := metav1.ConditionFalse
	if ok {
		cmd.Status.Phase = gav1.PhaseSucceeded
		status = metav1.ConditionTrue
	}
	cmd.Status.Reason, cmd.Status.Message = reason, msg
	cmd.Status.Agents = agents
	cmd.Status.CompletionTime = &now
	cmd.Status.ObservedGeneration = cmd.Generation
	if cmd.Status.StartTime == nil {
		cmd.Status.StartTime = &now
	}
	meta.SetStatusCondition(&cmd.Status.Conditions, metav1.Condition{Type: gav1.ConditionSucceeded, Status: status,
		Reason: reason, Message: msg, ObservedGeneration: cmd.Generation})
}

// complete writes a terminal outcome. On a conflict it re-reads: the outcome is written only
// while the command is still ours (Running, claimed by this instance) or still Scheduled (an
// AlreadyExecuted/DomainNotFound finish before any claim); a command the controller already
// finished (deadline) keeps its terminal state. While the API server is unreachable the outcome
// is kept and the write retried until it answers.
func (e *Executor) complete(ctx context.Context, cmd *gav1.GuestAgentCommand, ok bool, reason, msg string, agents []gav1.AgentType) error {
	log := ctrl.LoggerFrom(ctx)
	key := client.ObjectKeyFromObject(cmd)
	phaseBefore := cmd.Status.Phase
	for attempt := 0; attempt < 5; attempt++ {
		e.finish(cmd, ok, reason, msg, agents)
		err := retryTransient(ctx, log, "outcome of "+key.String(), func() error { return e.Client.Status().Update(ctx, cmd) })
		if err == nil {
			log.Info("Command finished", "guestAgentCommand", klog.KObj(cmd), "phase", cmd.Status.Phase, "reason", reason)
			return nil
		}
		if apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		fresh := &gav1.GuestAgentCommand{}
		if err := retryTransient(ctx, log, "re-reading "+key.String(), func() error { return e.APIReader.Get(ctx, key, fresh) }); err != nil {
			return client.IgnoreNotFound(err)
		}
		if fresh.Status.Phase == cmd.Status.Phase && fresh.Status.Reason == reason && fresh.Status.ClaimedBy == cmd.Status.ClaimedBy {
			// An earlier attempt was applied but its reply was lost.
			log.Info("Command finished", "guestAgentCommand", klog.KObj(cmd), "phase", fresh.Status.Phase, "reason", reason)
			return nil
		}
		stillOurs := fresh.Status.Phase == phaseBefore &&
			(phaseBefore != gav1.PhaseRunning || fresh.Status.ClaimedBy == e.InstanceID)
		if !stillOurs {
			log.Info("Outcome not written: the command changed meanwhile", "guestAgentCommand", klog.KObj(cmd),
				"phase", fresh.Status.Phase, "reason", fresh.Status.Reason, "ourOutcome", reason)
			return nil
		}
		*cmd = *fresh
	}
	return fmt.Errorf("writing outcome of %s: too many conflicts", key)
}
