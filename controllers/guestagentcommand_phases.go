package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// commandScope carries one reconcile of an active (non-terminal) command through its phases.
type commandScope struct {
	cmd    *gav1.GuestAgentCommand
	before *gav1.GuestAgentCommand
	now    time.Time
	// events are emitted only after the status write that makes them true succeeded.
	events []pendingEvent
	// done stops the remaining phases (the command finished, or must wait).
	done bool
	// abort skips the status write (a metadata write lost an optimistic-locking race).
	abort bool
}

type pendingEvent struct {
	eventType, reason, action, note string
}

func (s *commandScope) event(eventType, reason, action, note string) {
	s.events = append(s.events, pendingEvent{eventType: eventType, reason: reason, action: action, note: note})
}

// commandPhase is one step of the active-command reconcile.
type commandPhase func(ctx context.Context, s *commandScope) (ctrl.Result, error)

// reconcilePhases runs the phases in order until one finishes the command or fails, and returns
// the soonest requeue any of them asked for.
func (r *GuestAgentCommandReconciler) reconcilePhases(ctx context.Context, s *commandScope) (ctrl.Result, error) {
	phases := []commandPhase{
		r.reconcileInit,
		r.reconcileDeadline,
		r.reconcileValidate,
		r.reconcileTarget,
		r.reconcileRetarget,
	}
	var res ctrl.Result
	for _, phase := range phases {
		pr, err := phase(ctx, s)
		if errors.Is(err, errConflict) {
			s.abort = true
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		if err != nil {
			return ctrl.Result{}, err
		}
		res = lowestRequeue(res, pr)
		if s.done {
			break
		}
	}
	return res, nil
}

// reconcileInit sets the phase and both conditions on the first visit (Unknown until known).
func (r *GuestAgentCommandReconciler) reconcileInit(_ context.Context, s *commandScope) (ctrl.Result, error) {
	st := &s.cmd.Status
	if st.Phase == "" {
		st.Phase = gav1.PhasePending
		st.Reason = gav1.ReasonPending
		st.Message = "Validating the command and resolving its target"
	}
	if findCondition(st.Conditions, gav1.ConditionAccepted) == nil {
		s.setCondition(gav1.ConditionAccepted, unknown, gav1.ReasonPending, "Validating the command and resolving its target")
	}
	if findCondition(st.Conditions, gav1.ConditionSucceeded) == nil {
		s.setCondition(gav1.ConditionSucceeded, unknown, gav1.ReasonPending, "The command has not been scheduled yet")
	}
	return ctrl.Result{}, nil
}

// reconcileDeadline fails a command that is not finished by creationTimestamp + deadlineSeconds,
// in whichever phase (a Running command's late outcome then loses: see docs/commands.md), and
// otherwise asks to run again exactly at the deadline.
func (r *GuestAgentCommandReconciler) reconcileDeadline(_ context.Context, s *commandScope) (ctrl.Result, error) {
	seconds := gav1.DefaultDeadlineSeconds
	if d := s.cmd.Spec.DeadlineSeconds; d != nil {
		seconds = *d
	}
	deadline := s.cmd.CreationTimestamp.Add(time.Duration(seconds) * time.Second)
	if s.now.Before(deadline) {
		return ctrl.Result{RequeueAfter: deadline.Sub(s.now)}, nil
	}
	msg := fmt.Sprintf("The command did not finish within deadlineSeconds=%d (it was %s)", seconds, s.cmd.Status.Phase)
	if c := findCondition(s.cmd.Status.Conditions, gav1.ConditionAccepted); c == nil || c.Status == unknown {
		s.setCondition(gav1.ConditionAccepted, metav1False, gav1.ReasonDeadlineExceeded, msg)
	}
	s.fail(gav1.ReasonDeadlineExceeded, msg)
	return ctrl.Result{}, nil
}

// reconcileValidate fails a Pending command whose action can never be served by the selected
// agents (the CRD schema checks only the shape).
func (r *GuestAgentCommandReconciler) reconcileValidate(_ context.Context, s *commandScope) (ctrl.Result, error) {
	if s.cmd.Status.Phase != gav1.PhasePending {
		return ctrl.Result{}, nil
	}
	// A tenant's bad input is the command's outcome (status reason and a Warning Event when the
	// outcome is reported), not an error of the operator: nothing is logged at error level.
	if err := gav1.ValidateCommandSpec(&s.cmd.Spec); err != nil {
		msg := "Invalid command: " + err.Error()
		s.setCondition(gav1.ConditionAccepted, metav1False, gav1.ReasonInvalidSpec, msg)
		s.fail(gav1.ReasonInvalidSpec, msg)
	}
	return ctrl.Result{}, nil
}

// reconcileTarget resolves a Pending command's target in its own namespace, finishes it at once
// if the target already executed its key, and otherwise schedules it to the target's node.
func (r *GuestAgentCommandReconciler) reconcileTarget(ctx context.Context, s *commandScope) (ctrl.Result, error) {
	cmd := s.cmd
	if cmd.Status.Phase != gav1.PhasePending {
		return ctrl.Result{}, nil
	}
	gas, err := r.getTarget(ctx, cmd)
	if err != nil {
		return ctrl.Result{}, err
	}
	if gas == nil {
		msg := fmt.Sprintf("No GuestAgentStatus %q in namespace %q; waiting for it until the deadline", cmd.Spec.Target, cmd.Namespace)
		if c := findCondition(s.before.Status.Conditions, gav1.ConditionAccepted); c == nil || c.Reason != gav1.ReasonTargetNotFound {
			s.event(corev1.EventTypeWarning, gav1.ReasonTargetNotFound, "Resolve", msg)
		}
		s.setCondition(gav1.ConditionAccepted, metav1False, gav1.ReasonTargetNotFound, msg)
		cmd.Status.Reason, cmd.Status.Message = gav1.ReasonTargetNotFound, msg
		s.done = true
		return ctrl.Result{RequeueAfter: r.targetBackoff(s)}, nil
	}

	key := gav1.CommandKey(cmd)
	if e, ok := gav1.FindExecutedCommand(gas, key); ok {
		msg := fmt.Sprintf("Command %s was already executed on %s at %s; not sent again (create a new name to repeat it)",
			key, gas.Name, e.Time.UTC().Format(time.RFC3339))
		s.setCondition(gav1.ConditionAccepted, metav1True, gav1.ReasonAlreadyExecuted, msg)
		cmd.Status.DomainUUID = gas.Spec.DomainUUID
		s.succeed(gav1.ReasonAlreadyExecuted, msg)
		return ctrl.Result{}, nil
	}

	node := gas.Spec.NodeName
	msg := fmt.Sprintf("Scheduled to node %s for domain %s", node, gas.Spec.DomainUUID)
	cmd.Status.NodeName = node
	cmd.Status.DomainUUID = gas.Spec.DomainUUID
	cmd.Status.Phase = gav1.PhaseScheduled
	cmd.Status.Reason, cmd.Status.Message = gav1.ReasonScheduled, msg
	s.setCondition(gav1.ConditionAccepted, metav1True, gav1.ReasonScheduled, msg)
	s.setCondition(gav1.ConditionSucceeded, unknown, gav1.ReasonScheduled, "Waiting for agentd on node "+node+" to run the command")
	s.event(corev1.EventTypeNormal, gav1.ReasonScheduled, "Schedule", msg)
	s.done = true
	return ctrl.Result{}, nil
}

// reconcileRetarget follows a migrated domain: a Scheduled command that no agentd has claimed yet
// is scheduled to the target's new node (status.nodeName). The status write is optimistically
// locked, so it never overrides agentd's claim (which moves the phase to Running). It follows only
// a legitimate hand-over: the node the command is scheduled to released the target
// (status.release names it) or its Node object is gone. A node that took the target over without
// that cannot draw the command to itself (and fake its outcome): the command stays where it is
// and a Warning Event says why.
func (r *GuestAgentCommandReconciler) reconcileRetarget(ctx context.Context, s *commandScope) (ctrl.Result, error) {
	cmd := s.cmd
	if cmd.Status.Phase != gav1.PhaseScheduled {
		return ctrl.Result{}, nil
	}
	gas, err := r.getTarget(ctx, cmd)
	if err != nil || gas == nil {
		// A vanished target is agentd's to report (DomainNotFound) or the deadline's to end.
		return ctrl.Result{}, err
	}
	if cmd.Status.DomainUUID != "" && gas.Spec.DomainUUID != cmd.Status.DomainUUID {
		msg := fmt.Sprintf("Target %s now describes domain %s, not the scheduled domain %s", gas.Name, gas.Spec.DomainUUID, cmd.Status.DomainUUID)
		s.fail(gav1.ReasonDomainNotFound, msg)
		return ctrl.Result{}, nil
	}
	node, from := gas.Spec.NodeName, cmd.Status.NodeName
	if node == from {
		return ctrl.Result{}, nil
	}
	ok, err := r.handedOver(ctx, gas, from)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !ok {
		msg := fmt.Sprintf("Target %s names node %s, but node %s did not release it and still exists; "+
			"the command stays scheduled to node %s", gas.Name, node, from, from)
		if s.before.Status.Message != msg { // once per take-over
			ctrl.LoggerFrom(ctx).Info("Not re-targeting command to a node that took its target over without a release",
				"fromNode", from, "toNode", node, "guestAgentStatus", klog.KObj(gas))
			cmd.Status.Message = msg
			s.event(corev1.EventTypeWarning, ReasonRetargetRefused, "Schedule", msg)
		}
		// Looked at again: the Node may go away, which no watch of this controller reports.
		return ctrl.Result{RequeueAfter: r.targetBackoff(s)}, nil
	}
	ctrl.LoggerFrom(ctx).Info("Re-targeting command to the domain's new node", "fromNode", from, "toNode", node)
	msg := fmt.Sprintf("Scheduled to node %s for domain %s (re-targeted from node %s)", node, gas.Spec.DomainUUID, from)
	cmd.Status.NodeName = node
	cmd.Status.Message = msg
	s.setCondition(gav1.ConditionAccepted, metav1True, gav1.ReasonScheduled, msg)
	s.setCondition(gav1.ConditionSucceeded, unknown, gav1.ReasonScheduled, "Waiting for agentd on node "+node+" to run the command")
	s.event(corev1.EventTypeNormal, "Retargeted", "Schedule", msg)
	return ctrl.Result{}, nil
}

// ReasonRetargetRefused is the reason of the Warning Event of a Scheduled command whose target was
// taken over by another node without a release.
const ReasonRetargetRefused = "RetargetRefused"

// handedOver reports whether gas, which names another node than from, was handed over by from:
// from's agentd released it, or the Node from is gone (its agentd can release nothing).
func (r *GuestAgentCommandReconciler) handedOver(ctx context.Context, gas *gav1.GuestAgentStatus, from string) (bool, error) {
	if rel := gas.Status.Release; rel != nil && rel.NodeName == from {
		return true, nil
	}
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	exists, err := nodeExists(ctx, reader, from)
	return !exists, err
}

// getTarget returns the command's target from its own namespace, or nil if there is none. A
// command can never reach a status in another namespace: the namespace is the command's. A miss
// in the cache is confirmed with a live read (APIReader), so a status created a moment before the
// command, not yet in the cache, is not reported as missing.
func (r *GuestAgentCommandReconciler) getTarget(ctx context.Context, cmd *gav1.GuestAgentCommand) (*gav1.GuestAgentStatus, error) {
	gas := &gav1.GuestAgentStatus{}
	key := client.ObjectKey{Namespace: cmd.Namespace, Name: cmd.Spec.Target}
	err := r.Client.Get(ctx, key, gas)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		err = r.APIReader.Get(ctx, key, gas)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting target GuestAgentStatus %s/%s: %w", cmd.Namespace, cmd.Spec.Target, err)
	}
	return gas, nil
}

// targetBackoff is the requeue interval while the target is missing: a quarter of the command's
// age, between 1s and MaxTargetBackoff (the deadline requeue still applies).
func (r *GuestAgentCommandReconciler) targetBackoff(s *commandScope) time.Duration {
	d := s.now.Sub(s.cmd.CreationTimestamp.Time) / 4
	return min(max(d, time.Second), r.MaxTargetBackoff)
}

// lowestRequeue returns the sooner of two requeue requests, ignoring zero ones.
func lowestRequeue(a, b ctrl.Result) ctrl.Result {
	switch {
	case b.RequeueAfter <= 0:
		return a
	case a.RequeueAfter <= 0 || b.RequeueAfter < a.RequeueAfter:
		return b
	default:
		return a
	}
}
