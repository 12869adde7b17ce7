package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

const (
	metav1True  = metav1.ConditionTrue
	metav1False = metav1.ConditionFalse
	unknown     = metav1.ConditionUnknown
)

// maxEventNote is the longest Event note we send (events.k8s.io allows 1 kB).
const maxEventNote = 1000

// setCondition sets a condition with the command's generation; lastTransitionTime changes only
// when the status flips, and is truncated to seconds as the API serialises it.
func (s *commandScope) setCondition(condType string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.cmd.Status.Conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: s.cmd.Generation,
		LastTransitionTime: metav1.NewTime(s.now.Truncate(time.Second)),
	})
}

// succeed finishes the command as Succeeded; reconcileFinished reports it.
func (s *commandScope) succeed(reason, msg string) {
	s.finish(gav1.PhaseSucceeded, metav1True, reason, msg)
}

// fail finishes the command as Failed; reconcileFinished reports it.
func (s *commandScope) fail(reason, msg string) {
	s.finish(gav1.PhaseFailed, metav1False, reason, msg)
}

func (s *commandScope) finish(phase gav1.CommandPhase, status metav1.ConditionStatus, reason, msg string) {
	st := &s.cmd.Status
	st.Phase, st.Reason, st.Message = phase, reason, msg
	t := metav1.NewTime(s.now.Truncate(time.Second))
	st.CompletionTime = &t
	s.setCondition(gav1.ConditionSucceeded, status, reason, msg)
	s.done = true
}

func findCondition(conds []metav1.Condition, condType string) *metav1.Condition {
	return meta.FindStatusCondition(conds, condType)
}

// reconcileFinished handles a terminal command: it reports the outcome once, then deletes the
// command when its TTL has passed. Of a terminal command's status it writes only
// outcomeReported (the phase and outcome never change).
func (r *GuestAgentCommandReconciler) reconcileFinished(ctx context.Context, cmd *gav1.GuestAgentCommand) (ctrl.Result, error) {
	if !cmd.Status.OutcomeReported {
		reported, err := r.reportOutcome(ctx, cmd)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !reported {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
	}
	return r.reconcileTTL(ctx, cmd)
}

// reportOutcome marks the command's outcome as reported (status.outcomeReported, through the
// status subresource that tenants cannot write, with an optimistic lock) and, only if that write
// won, emits the Event and observes the metrics, so an outcome is reported exactly once, also
// across controller restarts and leader changes. It reports false if another writer changed the
// command first.
func (r *GuestAgentCommandReconciler) reportOutcome(ctx context.Context, cmd *gav1.GuestAgentCommand) (bool, error) {
	orig := cmd.DeepCopy()
	cmd.Status.OutcomeReported = true
	if err := r.Client.Status().Patch(ctx, cmd, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("marking the outcome of GuestAgentCommand as reported: %w", err)
	}

	st := &cmd.Status
	eventType, reason, action, result := corev1.EventTypeNormal, string(st.Phase), "Execute", ResultSucceeded
	switch {
	case st.Phase == gav1.PhaseSucceeded && st.Reason == gav1.ReasonAlreadyExecuted:
		reason, action, result = gav1.ReasonAlreadyExecuted, "Skip", ResultAlreadyExecuted
	case st.Phase == gav1.PhaseFailed && st.Reason == gav1.ReasonDeadlineExceeded:
		eventType, reason, action, result = corev1.EventTypeWarning, gav1.ReasonDeadlineExceeded, "Expire", ResultDeadlineExceeded
	case st.Phase == gav1.PhaseFailed:
		eventType, result = corev1.EventTypeWarning, ResultFailed
	}
	note := st.Message
	if st.Reason != "" && st.Reason != reason {
		note = st.Reason + ": " + note
	}
	if len(note) > maxEventNote {
		note = note[:maxEventNote]
	}
	r.Recorder.Eventf(cmd, nil, eventType, reason, action, "%s", note)

	finished := completionTime(cmd)
	commandTotal.WithLabelValues(string(cmd.Spec.Action), result).Inc()
	commandDuration.WithLabelValues(string(cmd.Spec.Action)).Observe(max(finished.Sub(cmd.CreationTimestamp.Time), 0).Seconds())
	ctrl.LoggerFrom(ctx).Info("Command finished", "phase", st.Phase, "reason", st.Reason, "node", st.NodeName)
	return true, nil
}

// reconcileTTL deletes a finished command ttlSecondsAfterFinished after its completion, or asks
// to run again exactly then.
func (r *GuestAgentCommandReconciler) reconcileTTL(ctx context.Context, cmd *gav1.GuestAgentCommand) (ctrl.Result, error) {
	ttl := r.DefaultTTL
	if t := cmd.Spec.TTLSecondsAfterFinished; t != nil {
		ttl = time.Duration(*t) * time.Second
	}
	expiry := completionTime(cmd).Add(ttl)
	if now := r.Clock.Now(); now.Before(expiry) {
		return ctrl.Result{RequeueAfter: expiry.Sub(now)}, nil
	}
	ctrl.LoggerFrom(ctx).Info("Deleting finished command after its TTL", "ttl", ttl.String())
	uid := cmd.UID
	if err := r.Client.Delete(ctx, cmd, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("deleting expired GuestAgentCommand: %w", err)
	}
	return ctrl.Result{}, nil
}

// completionTime is status.completionTime, else the time the Succeeded condition settled, else
// the creation time (a writer that forgot completionTime must not keep a command forever).
func completionTime(cmd *gav1.GuestAgentCommand) time.Time {
	if t := cmd.Status.CompletionTime; t != nil {
		return t.Time
	}
	if c := findCondition(cmd.Status.Conditions, gav1.ConditionSucceeded); c != nil && c.Status != unknown {
		return c.LastTransitionTime.Time
	}
	return cmd.CreationTimestamp.Time
}
