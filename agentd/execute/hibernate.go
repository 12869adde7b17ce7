package execute

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/service"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Hibernator is what a Hibernate needs beyond Service: the wait for the guest session's lock and
// libvirt's managed save. GuestAgentService implements it.
type Hibernator interface {
	// WaitSessionLocked waits until the guest session is Locked or LoggedOff, at most until ctx
	// ends (then it returns the last state and ctx's error).
	WaitSessionLocked(ctx context.Context, uuid string) (guest.SessionState, error)
	// ManagedSave saves the domain with libvirt's managed save; it returns when the save ended.
	ManagedSave(ctx context.Context, uuid string) error
	// HasManagedSaveImage reports whether libvirt holds a managed save image of the domain.
	HasManagedSaveImage(ctx context.Context, uuid string) (bool, error)
}

// savedWait bounds the wait for libvirt's STOPPED/SAVED event after the managed save returned.
const savedWait = 30 * time.Second

// runHibernate carries out a Hibernate the way VDSM hibernates a VM: the oVirt guest agent locks
// the screen (and the session is waited for, at most lockTimeoutSeconds), the guest's
// before_hibernation hooks run (their completion waited for, at most hookTimeoutSeconds), then
// libvirt's managed save stores the memory and stops the domain. Success is what libvirt shows:
// the domain shut off with a managed save image. A failed save sends after_hibernation with
// failure to the guest (which runs on) and fails the command. Without a usable oVirt agent the
// guest steps are skipped (agent Auto) or the command fails before the save (agent
// OvirtGuestAgent). Every step is recorded in status.powerSteps before the next one is taken; the
// restore's after_hibernation is sent by GuestAgentService on libvirt's STARTED/RESTORED.
func (e *Executor) runHibernate(ctx context.Context, cmd *gav1.GuestAgentCommand, uuid string) powerOutcome {
	log := ctrl.LoggerFrom(ctx).WithValues("guestAgentCommand", klog.KObj(cmd), "action", cmd.Spec.Action, "domainUUID", uuid)
	h, ok := e.Service.(Hibernator)
	if !ok {
		return powerOutcome{reason: gav1.ReasonSaveFailed, msg: "this agentd cannot save domains (no libvirt managed save); nothing was sent"}
	}
	deadline := e.deadline(cmd)
	lockWait, hookWait := gav1.HibernateTimeouts(&cmd.Spec)
	required := cmd.Spec.Agent == gav1.AgentSelectOvirt

	w, ok := e.Service.WatchPower(uuid)
	if !ok {
		return powerOutcome{reason: gav1.ReasonDomainNotFound, msg: fmt.Sprintf("domain %s is not on this node", uuid)}
	}
	defer w.Close()
	if !w.State.Active() {
		if has, err := h.HasManagedSaveImage(ctx, uuid); err == nil && has {
			return powerOutcome{ok: true, reason: gav1.ReasonHibernated, msg: fmt.Sprintf("the domain was already %s with a managed save image; nothing was sent", w.State)}
		}
		return powerOutcome{reason: gav1.ReasonSaveFailed, msg: fmt.Sprintf("the domain is %s without a managed save image: there is nothing to save; nothing was sent", w.State)}
	}

	out := powerOutcome{}
	var steps []gav1.PowerStep
	defer func() {
		if len(steps) > 0 && !out.aborted {
			cmd.Status.PowerSteps = capSteps(steps)
		}
	}()
	record := func(s gav1.PowerStep) bool {
		steps = append(steps, s)
		log.Info("Hibernate step", "method", s.Method, "operation", s.Operation, "result", s.Result, "message", s.Message)
		if err := e.recordSteps(ctx, cmd, steps); err != nil {
			out.aborted = true
			return false
		}
		return true
	}
	// ended reports a change that ends the hibernation before the save (the domain stopped,
	// crashed or left), without waiting.
	ended := func() (powerOutcome, bool) {
		select {
		case pc := <-w.C:
			if pc.Event == service.PowerStopped || pc.Event == service.PowerGone {
				out.reason, out.msg = gav1.ReasonSaveFailed, "the domain stopped before the save ("+pc.Detail+"): "+summarize(steps)
				if pc.Event == service.PowerGone {
					out.reason = gav1.ReasonDomainNotFound
				}
				return out, true
			}
		default:
		}
		return out, false
	}
	// refuseRequired ends the hibernation before anything is saved: the oVirt agent's step was
	// skipped, but agent OvirtGuestAgent makes the guest preparation required.
	refuseRequired := func(step gav1.PowerStep, err error, cannot string) powerOutcome {
		step.Message = stepMessage("required (agent OvirtGuestAgent), but " + err.Error())
		if !record(step) {
			return out
		}
		out.reason = gav1.ReasonAgentUnavailable
		out.msg = "agent OvirtGuestAgent was asked for, but the oVirt guest agent cannot " + cannot + ": " + err.Error() + "; the domain was not saved"
		return out
	}
	ogaSpec := func(a gav1.Action) gav1.GuestAgentCommandSpec {
		return gav1.GuestAgentCommandSpec{Action: a, Agent: gav1.AgentSelectOvirt, Fallback: gav1.FallbackNone}
	}

	// 1. Lock the screen and wait for the session to be locked (VDSM: up to 30 s).
	step := gav1.PowerStep{Method: gav1.PowerOvirt, Operation: gav1.OperationLockScreen, Time: metav1.NewTime(e.Now())}
	sendCtx, cancel := context.WithTimeout(ctx, min(stepSendTimeout, deadline.Sub(e.Now())))
	_, err := e.Service.Execute(sendCtx, uuid, service.Request{Spec: ogaSpec(gav1.ActionLockScreen)})
	cancel()
	if ctx.Err() != nil {
		out.aborted = true
		return out
	}
	switch {
	case err != nil:
		step.Result, step.Message = stepFailure(err, isNotSent(err))
		if step.Result == gav1.StepSkipped && required {
			return refuseRequired(step, err, "prepare the guest")
		}
	default:
		out.touched, out.agents = true, appendAgent(out.agents, gav1.PowerOvirt)
		wait := min(lockWait, deadline.Sub(e.Now()))
		st, werr := e.waitLocked(ctx, h, uuid, wait)
		if ctx.Err() != nil {
			out.aborted = true
			return out
		}
		if werr != nil {
			step.Result = gav1.StepTimedOut
			step.Message = stepMessage(fmt.Sprintf("lock-screen sent; the session was still %s after %s; going on", st, wait.Round(time.Second)))
		} else {
			step.Result, step.Message = gav1.StepAccepted, stepMessage(fmt.Sprintf("the session is %s", st))
		}
	}
	if !record(step) {
		return out
	}
	if o, done := ended(); done {
		return o
	}
	if !e.Now().Before(deadline) {
		return e.powerDeadline(out, steps, "managed save")
	}

	// 2. The before_hibernation hooks, waiting for their completion (VDSM: 10 s).
	step = gav1.PowerStep{Method: gav1.PowerOvirt, Operation: gav1.OperationBeforeHibernation, Time: metav1.NewTime(e.Now())}
	hook := ogaSpec(gav1.ActionHook)
	hook.Hook = &gav1.HookParams{Name: gav1.HookBeforeHibernation, WaitForCompletion: ptr.To(true), TimeoutSeconds: ptr.To(int32(hookWait / time.Second))}
	sendCtx, cancel = context.WithTimeout(ctx, min(hookWait+stepSendTimeout, deadline.Sub(e.Now())))
	_, err = e.Service.Execute(sendCtx, uuid, service.Request{Spec: hook})
	cancel()
	if ctx.Err() != nil {
		out.aborted = true
		return out
	}
	var ee *service.ExecError
	switch {
	case err == nil:
		out.touched, out.agents = true, appendAgent(out.agents, gav1.PowerOvirt)
		step.Result, step.Message = gav1.StepAccepted, "the guest's before_hibernation hooks completed"
	case errors.As(err, &ee) && ee.Reason == gav1.ReasonAgentTimeout && !ee.NotSent:
		out.touched = true
		step.Result = gav1.StepTimedOut
		step.Message = stepMessage(fmt.Sprintf("no completion of the before_hibernation hooks within %s; going on (%v)", hookWait.Round(time.Second), err))
	default:
		step.Result, step.Message = stepFailure(err, isNotSent(err))
		if step.Result == gav1.StepSkipped && required {
			return refuseRequired(step, err, "run the before_hibernation hooks")
		}
		if step.Result != gav1.StepSkipped {
			out.touched = true
		}
	}
	if !record(step) {
		return out
	}
	if o, done := ended(); done {
		return o
	}
	if !e.Now().Before(deadline) {
		return e.powerDeadline(out, steps, "managed save")
	}

	// 3. libvirt's managed save. The call returns when the save ended; it cannot be cancelled, so
	// at the deadline the command ends while the save may still run.
	step = gav1.PowerStep{Method: gav1.PowerManagedSave, Time: metav1.NewTime(e.Now())}
	out.touched = true
	res := make(chan error, 1)
	go func() { res <- h.ManagedSave(ctx, uuid) }()
	var serr error
	select {
	case serr = <-res:
	case <-e.After(deadline.Sub(e.Now())):
		step.Result, step.Message = gav1.StepTimedOut, "the managed save was still running at the deadline"
		steps = append(steps, step)
		return e.powerDeadline(out, steps, "managed save")
	case <-ctx.Done():
		out.aborted = true
		return out
	}
	if serr != nil {
		step.Result, step.Message = gav1.StepError, stepMessage(serr.Error())
		if !record(step) {
			return out
		}
		return e.hibernationFailed(ctx, uuid, out, record, "the managed save failed: "+serr.Error())
	}
	step.Result, step.Message = gav1.StepAccepted, "saved; waiting for libvirt to report the domain shut off"
	if !record(step) {
		return out
	}
	timer := e.After(min(savedWait, max(deadline.Sub(e.Now()), time.Second)))
	for {
		select {
		case pc := <-w.C:
			switch pc.Event {
			case service.PowerGone:
				out.reason, out.msg = gav1.ReasonDomainNotFound, pc.Detail+" after the managed save"
				return out
			case service.PowerStopped:
				has, err := h.HasManagedSaveImage(ctx, uuid)
				if err != nil || !has {
					out.reason = gav1.ReasonSaveFailed
					out.msg = fmt.Sprintf("the domain shut off (%s) but libvirt holds no managed save image", pc.Detail)
					if err != nil {
						out.msg += ": " + err.Error()
					}
					return out
				}
				out.ok, out.reason = true, gav1.ReasonHibernated
				out.msg = fmt.Sprintf("domain shut off with a managed save image (%s); starting it restores the guest", pc.Detail)
				return out
			}
		case <-timer:
			out.reason = gav1.ReasonSaveFailed
			out.msg = fmt.Sprintf("the managed save returned, but libvirt did not report the domain shut off within %s", savedWait)
			return out
		case <-ctx.Done():
			out.aborted = true
			return out
		}
	}
}

// hibernationFailed ends a Hibernate whose save failed: the guest, which runs on, is sent
// after_hibernation with failure (VDSM's after_hibernation_failure), recorded as a step.
func (e *Executor) hibernationFailed(ctx context.Context, uuid string, out powerOutcome, record func(gav1.PowerStep) bool, why string) powerOutcome {
	step := gav1.PowerStep{Method: gav1.PowerOvirt, Operation: gav1.OperationAfterHibernation, Time: metav1.NewTime(e.Now())}
	spec := gav1.GuestAgentCommandSpec{Action: gav1.ActionHook, Agent: gav1.AgentSelectOvirt, Fallback: gav1.FallbackNone,
		Hook: &gav1.HookParams{Name: gav1.HookAfterHibernation, Failure: true, WaitForCompletion: ptr.To(false)}}
	sendCtx, cancel := context.WithTimeout(ctx, stepSendTimeout)
	_, err := e.Service.Execute(sendCtx, uuid, service.Request{Spec: spec})
	cancel()
	if ctx.Err() != nil {
		out.aborted = true
		return out
	}
	sent := "after_hibernation with failure sent to the guest"
	if err != nil {
		step.Result, step.Message = stepFailure(err, isNotSent(err))
		sent = "after_hibernation with failure not sent: " + err.Error()
	} else {
		step.Result, step.Message = gav1.StepAccepted, "after_hibernation with failure sent"
	}
	if !record(step) {
		out.aborted = true
		return out
	}
	out.reason = gav1.ReasonSaveFailed
	out.msg = why + "; the domain runs on; " + sent
	return out
}

// waitLocked waits at most d (on the executor's clock) for the guest session to be locked.
func (e *Executor) waitLocked(ctx context.Context, h Hibernator, uuid string, d time.Duration) (guest.SessionState, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	timer := e.After(d)
	go func() {
		select {
		case <-timer:
			cancel()
		case <-stop:
		}
	}()
	return h.WaitSessionLocked(wctx, uuid)
}

// isNotSent reports whether err says nothing reached the agent (it was not usable).
func isNotSent(err error) bool {
	var ee *service.ExecError
	return errors.As(err, &ee) && ee.NotSent
}
