package execute

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// stepSendTimeout bounds the delivery of one step (the agent's or libvirt's answer); the wait for
// its effect is the grace period.
const stepSendTimeout = 30 * time.Second

// powerOutcome is the end of a power policy.
type powerOutcome struct {
	ok      bool
	reason  string
	msg     string
	agents  []gav1.AgentType
	touched bool // a step reached the guest or libvirt (for the executed history)
	aborted bool // the command is no longer ours, or agentd stops: write nothing
}

// errNotOurs aborts a policy whose command changed under it (the controller failed it).
var errNotOurs = errors.New("the command is no longer claimed by this agentd")

// runPower carries out a Shutdown, Reboot or Suspend as its power policy: each method in order,
// skipped when its agent is not usable, and given the grace period to bring the domain down (or
// through a reboot, or into PM suspend) before the next one is tried. Success is what libvirt
// reports (the domain shut off, its REBOOT event, or its PMSUSPENDED event; a Suspend to disk:
// shut off), never an agent's acceptance. Every step is recorded in status.powerSteps
// before the next one is taken; after an agentd restart the policy is not continued (see sweep).
func (e *Executor) runPower(ctx context.Context, cmd *gav1.GuestAgentCommand, uuid string) powerOutcome {
	action := cmd.Spec.Action
	log := ctrl.LoggerFrom(ctx).WithValues("guestAgentCommand", klog.KObj(cmd), "action", action, "domainUUID", uuid)
	methods := gav1.PowerMethods(&cmd.Spec)
	grace := gav1.PowerGracePeriod(&cmd.Spec)
	deadline := e.deadline(cmd)
	want, wantText := service.PowerStopped, "shut-off"
	// done: the wanted change happened ("domain <done> after <method>"); verb: what the domain
	// did not do ("did not <verb>"); okReason/failReason: the outcome's reasons.
	done, verb, okReason, failReason := "shut off", "shut off", gav1.ReasonShutOff, gav1.ReasonNotShutOff
	suspend, mode := action == gav1.ActionSuspend, gav1.SuspendModeOf(&cmd.Spec)
	switch {
	case action == gav1.ActionReboot:
		want, wantText = service.PowerRebooted, "reboot"
		done, verb, okReason, failReason = "rebooted", "reboot", gav1.ReasonRebooted, gav1.ReasonNotRebooted
	case suspend && mode == gav1.SuspendDisk:
		// The guest hibernates itself and powers off: libvirt's PMSUSPENDED/DISK, then STOPPED.
		wantText = "suspend to disk (the domain shutting off)"
		done, verb, okReason, failReason = "shut off (suspended to disk)", "suspend to disk and shut off", gav1.ReasonSuspended, gav1.ReasonNotSuspended
	case suspend:
		want, wantText = service.PowerSuspended, "PM suspend"
		done, verb, okReason, failReason = "PM-suspended", "suspend", gav1.ReasonSuspended, gav1.ReasonNotSuspended
	}

	w, ok := e.Service.WatchPower(uuid)
	if !ok {
		return powerOutcome{reason: gav1.ReasonDomainNotFound, msg: fmt.Sprintf("domain %s is not on this node", uuid)}
	}
	defer w.Close()
	if suspend && w.State == virt.StatePMSuspended && mode != gav1.SuspendDisk {
		return powerOutcome{ok: true, reason: gav1.ReasonSuspended, msg: "the domain was already PM-suspended; nothing was sent"}
	}
	if suspend && w.State != virt.StateRunning {
		return powerOutcome{reason: gav1.ReasonNotSuspended, msg: fmt.Sprintf("the domain is %s: a suspend needs a running guest; nothing was sent", w.State)}
	}
	if !w.State.Active() {
		if action == gav1.ActionShutdown {
			return powerOutcome{ok: true, reason: gav1.ReasonShutOff, msg: fmt.Sprintf("the domain was already %s; nothing was sent", w.State)}
		}
		return powerOutcome{reason: gav1.ReasonNotRebooted, msg: fmt.Sprintf("the domain is %s: a reboot needs a running domain; nothing was sent", w.State)}
	}

	out := powerOutcome{}
	// seen reports the first change of the wanted kind (or one that ends the policy) already
	// delivered, without waiting.
	var pending *service.PowerChange
	poll := func() *service.PowerChange {
		if pending != nil {
			return pending
		}
		select {
		case pc := <-w.C:
			pending = &pc
		default:
		}
		return pending
	}
	// settle turns a power change into the outcome, after method m; ok false means "keep waiting".
	settle := func(pc service.PowerChange, m gav1.PowerMethod) (powerOutcome, bool) {
		switch {
		case pc.Event == want:
			out.ok, out.agents = true, appendAgent(nil, m)
			out.reason = okReason
			out.msg = fmt.Sprintf("domain %s after %s", done, m)
			if pc.Detail != "" {
				out.msg += " (" + pc.Detail + ")"
			}
			return out, true
		case pc.Event == service.PowerGone:
			out.reason, out.msg = gav1.ReasonDomainNotFound, fmt.Sprintf("%s after %s: the policy stops", pc.Detail, m)
			return out, true
		case pc.Event == service.PowerStopped && action == gav1.ActionReboot:
			out.reason = gav1.ReasonNotRebooted
			out.msg = fmt.Sprintf("the domain shut off instead of rebooting after %s (is its on_reboot policy destroy?)", m)
			return out, true
		case pc.Event == service.PowerStopped && suspend:
			out.reason = gav1.ReasonNotSuspended
			out.msg = fmt.Sprintf("the domain shut off instead of suspending after %s (%s)", m, pc.Detail)
			return out, true
		}
		pending = nil // a reboot while shutting down: keep waiting for the shut off
		return out, false
	}

	var steps []gav1.PowerStep
	defer func() {
		if len(steps) > 0 && !out.aborted {
			cmd.Status.PowerSteps = capSteps(steps)
		}
	}()
	var last gav1.PowerMethod
	for _, m := range methods {
		now := e.Now()
		if !now.Before(deadline) {
			return e.powerDeadline(out, steps, wantText)
		}
		if pc := poll(); pc != nil && last != "" {
			if o, done := settle(*pc, last); done {
				return o
			}
		}
		step := gav1.PowerStep{Method: m, Time: metav1.NewTime(now)}
		// The send may take at most the step's grace period: libvirt's shutdown through the QEMU
		// guest agent, for one, waits up to 60 s for the guest to go down whatever the agent
		// timeout, and a step must not eat the next steps' time.
		sendWait := min(stepSendTimeout, grace, deadline.Sub(now))
		sendCtx, cancel := context.WithTimeout(ctx, sendWait)
		type sendResult struct {
			err     error
			skipped bool
		}
		res := make(chan sendResult, 1) // the send may finish after the step gave up on it
		go func() {
			switch m {
			case gav1.PowerQemu, gav1.PowerOvirt:
				// Through GuestAgentService with an explicit agent: it knows whether that agent
				// can take the request now, and nothing here talks to an agent directly.
				spec := cmd.Spec.DeepCopy()
				spec.Agent, spec.Fallback, spec.Power = gav1.AgentSelector(m), gav1.FallbackNone, nil
				_, err := e.Service.Execute(sendCtx, uuid, service.Request{Spec: *spec})
				var ee *service.ExecError
				res <- sendResult{err: err, skipped: errors.As(err, &ee) && ee.NotSent}
			default:
				res <- sendResult{err: e.Service.HostPower(sendCtx, uuid, action, m)}
			}
		}()
		var r sendResult
		noAnswer := false
		select {
		case r = <-res:
		case <-sendCtx.Done():
			noAnswer = true
		}
		cancel()
		if ctx.Err() != nil {
			out.aborted = true
			return out
		}
		if noAnswer {
			// sent, still in progress: it had the whole grace period, as an accepted step has
			out.touched, last = true, m
			step.Result = gav1.StepTimedOut
			step.Message = stepMessage(fmt.Sprintf("sent; no answer within %s, and the domain did not %s meanwhile",
				sendWait.Round(time.Second), verb))
			steps = append(steps, step)
			log.Info("Power step timed out", "method", m, "wait", sendWait.String(), "answered", false)
			if err := e.recordSteps(ctx, cmd, steps); err != nil {
				out.aborted = true
				return out
			}
			continue
		}
		err, skipped := r.err, r.skipped
		if !skipped {
			out.touched = true
			last = m
		}
		if err != nil {
			// The guest may have gone down while the agent answered (its channel closes).
			if pc := poll(); pc != nil && !skipped {
				if o, done := settle(*pc, m); done {
					step.Result = gav1.StepAccepted
					step.Message = stepMessage("the request failed (" + err.Error() + ") but the domain reached the state")
					steps = append(steps, step)
					return o
				}
			}
			step.Result, step.Message = stepFailure(err, skipped)
			steps = append(steps, step)
			log.Info("Power step not taken", "method", m, "result", step.Result, "message", step.Message)
			if err := e.recordSteps(ctx, cmd, steps); err != nil {
				out.aborted = true
				return out
			}
			continue
		}
		wait := min(grace, deadline.Sub(e.Now()))
		step.Result = gav1.StepAccepted
		step.Message = stepMessage(fmt.Sprintf("accepted; waiting up to %s for the %s", wait.Round(time.Second), wantText))
		steps = append(steps, step)
		log.Info("Power step accepted; waiting for libvirt", "method", m, "wait", wait.String())
		if err := e.recordSteps(ctx, cmd, steps); err != nil {
			out.aborted = true
			return out
		}
		timer := e.After(wait)
	waiting:
		for {
			if pc := poll(); pc != nil {
				if o, done := settle(*pc, m); done {
					return o
				}
			}
			select {
			case pc := <-w.C:
				pending = &pc
			case <-timer:
				steps[len(steps)-1].Result = gav1.StepTimedOut
				steps[len(steps)-1].Message = stepMessage(fmt.Sprintf("accepted, but the domain did not %s within %s", verb, wait.Round(time.Second)))
				log.Info("Power step timed out", "method", m, "wait", wait.String())
				break waiting
			case <-ctx.Done():
				out.aborted = true
				return out
			}
		}
	}
	if !e.Now().Before(deadline) {
		return e.powerDeadline(out, steps, wantText)
	}
	out.reason = failReason
	out.msg = fmt.Sprintf("no method achieved the %s: %s", wantText, summarize(steps))
	return out
}

// powerDeadline ends a policy at the command's deadline.
func (e *Executor) powerDeadline(out powerOutcome, steps []gav1.PowerStep, wantText string) powerOutcome {
	out.ok = false
	out.reason = gav1.ReasonDeadlineExceeded
	out.msg = fmt.Sprintf("the deadline passed before the %s: %s", wantText, summarize(steps))
	out.msg = strings.TrimSuffix(out.msg, ": ")
	return out
}

// recordSteps writes status.powerSteps (optimistically locked to the claim). A conflict is
// retried while the command is still Running and claimed by this agentd; otherwise errNotOurs.
func (e *Executor) recordSteps(ctx context.Context, cmd *gav1.GuestAgentCommand, steps []gav1.PowerStep) error {
	log := ctrl.LoggerFrom(ctx)
	key := client.ObjectKeyFromObject(cmd)
	steps = capSteps(steps)
	for attempt := 0; attempt < 5; attempt++ {
		cmd.Status.PowerSteps = append([]gav1.PowerStep(nil), steps...)
		err := retryTransient(ctx, log, "power steps of "+key.String(), func() error { return e.Client.Status().Update(ctx, cmd) })
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		fresh := &gav1.GuestAgentCommand{}
		if err := e.APIReader.Get(ctx, key, fresh); err != nil {
			return err
		}
		if fresh.Status.Phase != gav1.PhaseRunning || fresh.Status.ClaimedBy != e.InstanceID {
			log.Info("Power policy stopped: the command changed meanwhile", "guestAgentCommand", klog.KObj(cmd),
				"phase", fresh.Status.Phase, "reason", fresh.Status.Reason)
			return errNotOurs
		}
		*cmd = *fresh
	}
	return fmt.Errorf("recording power steps of %s: too many conflicts", key)
}

// capSteps keeps the last MaxPowerSteps steps (a policy has at most 4; the cap guards the CRD's limit).
func capSteps(steps []gav1.PowerStep) []gav1.PowerStep {
	if len(steps) > gav1.MaxPowerSteps {
		steps = steps[len(steps)-gav1.MaxPowerSteps:]
	}
	return append([]gav1.PowerStep(nil), steps...)
}

// stepFailure classifies a step that did not take the request.
func stepFailure(err error, skipped bool) (gav1.PowerStepResult, string) {
	if skipped {
		return gav1.StepSkipped, stepMessage(err.Error())
	}
	var ee *service.ExecError
	if errors.As(err, &ee) {
		switch ee.Reason {
		case gav1.ReasonAgentError, gav1.ReasonAgentUnsupported:
			return gav1.StepRefused, stepMessage(err.Error())
		}
	}
	return gav1.StepError, stepMessage(err.Error())
}

func stepMessage(s string) string {
	if len(s) > 512 {
		return s[:509] + "..."
	}
	return s
}

// summarize lists the steps for an outcome message.
func summarize(steps []gav1.PowerStep) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%s %s (%s)", s.Method, strings.ToLower(string(s.Result)), s.Message)
	}
	if len(parts) == 0 {
		return "no step was taken"
	}
	return strings.Join(parts, "; ")
}

// appendAgent adds the agent (or ACPI) behind method m to agents, once. Destroy is not an agent.
func appendAgent(agents []gav1.AgentType, m gav1.PowerMethod) []gav1.AgentType {
	var a gav1.AgentType
	switch m {
	case gav1.PowerQemu:
		a = gav1.AgentQemu
	case gav1.PowerOvirt:
		a = gav1.AgentOvirt
	case gav1.PowerACPI:
		a = gav1.AgentACPI
	default:
		return agents
	}
	for _, x := range agents {
		if x == a {
			return agents
		}
	}
	return append(agents, a)
}
