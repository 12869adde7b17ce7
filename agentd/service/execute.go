package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Request is one command for a domain's guest, in API terms.
type Request struct {
	Spec gav1.GuestAgentCommandSpec
}

// Result tells which agents (or fallback) served a request.
type Result struct {
	Agents  []gav1.AgentType
	Message string
}

// ExecError is a failed request with a reason from the API's reason set (AgentUnavailable,
// AgentUnsupported, AgentTimeout, AgentError, DomainNotFound, FallbackFailed, InvalidSpec).
type ExecError struct {
	Reason string
	Err    error
	// NotSent is true when nothing reached any agent (none was usable).
	NotSent bool
}

func (e *ExecError) Error() string { return e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }

func execErr(reason string, format string, a ...any) *ExecError {
	return &ExecError{Reason: reason, Err: fmt.Errorf(format, a...)}
}

// Execute routes a request to the agents that can serve it and returns what served it.
//
// Routing: the selected agents come from v1alpha1.SelectAgents (Auto: QGA first for power
// actions, ping and SetVCPUs; OGA for hooks, lock and log-off; QGA for freeze, thaw and time).
// A SetVCPUs count beyond the domain's vCPUs (Options.VCPUs) fails as InvalidSpec before any
// agent is asked. Agents that
// are not usable now (channel down, not responsive) are skipped with the reason recorded; with
// Auto the next one is tried, with an explicit agent the request fails. Both sends to both and
// succeeds if one succeeds. The ACPI fallback is taken only when the spec asks for it and no
// selected agent served a power action; Result.Agents then says ACPI. An unresponsive agent is
// never reported as success. Requests to one agent of a domain are serialised.
func (s *GuestAgentService) Execute(ctx context.Context, uuid string, req Request) (Result, error) {
	spec := req.Spec
	agents, err := gav1.SelectAgents(spec.Action, spec.Agent)
	if err != nil {
		return Result{}, &ExecError{Reason: gav1.ReasonAgentUnsupported, Err: err}
	}
	v, ok := s.View(uuid)
	if !ok {
		return Result{}, execErr(gav1.ReasonDomainNotFound, "domain %s is not on this node", uuid)
	}
	if !v.Domain.State.Active() {
		if res, ferr, tried := s.fallback(ctx, uuid, spec, nil); tried {
			return res, ferr
		}
		return Result{}, execErr(gav1.ReasonAgentUnavailable, "domain %s is %s", v.Domain.Name, v.Domain.State)
	}
	if spec.Action == gav1.ActionSetVCPUs {
		if ee := s.checkVCPUs(ctx, v.Domain, spec.SetVCPUs); ee != nil {
			ee.NotSent = true
			return Result{}, ee
		}
	}
	var res Result
	var failures []string
	var lastReason string
	sent := false
	for _, a := range agents {
		if why := usable(a, v); why != "" {
			failures = append(failures, fmt.Sprintf("%s: %s", a, why))
			lastReason = gav1.ReasonAgentUnavailable
			continue
		}
		unlock, err := s.lockAgent(ctx, uuid, a)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", a, err))
			lastReason = gav1.ReasonAgentTimeout
			continue
		}
		sent = true
		msg, err := s.send(ctx, a, uuid, spec)
		unlock()
		if err != nil {
			reason := classify(err)
			failures = append(failures, fmt.Sprintf("%s: %v", a, err))
			lastReason = reason
			continue
		}
		res.Agents = append(res.Agents, a)
		if msg != "" {
			if res.Message != "" {
				res.Message += "; "
			}
			res.Message += msg
		}
		if spec.Agent != gav1.AgentBoth {
			break
		}
	}
	if len(res.Agents) > 0 {
		if res.Message == "" {
			res.Message = fmt.Sprintf("%s delivered through %s", spec.Action, joinAgents(res.Agents))
		}
		if len(failures) > 0 {
			res.Message += " (" + strings.Join(failures, "; ") + ")"
		}
		return res, nil
	}
	if fres, ferr, tried := s.fallback(ctx, uuid, spec, failures); tried {
		return fres, ferr
	}
	if lastReason == "" {
		lastReason = gav1.ReasonAgentUnavailable
	}
	ee := execErr(lastReason, "%s not delivered: %s", spec.Action, strings.Join(failures, "; "))
	ee.NotSent = !sent
	return Result{}, ee
}

// usable says why agent a cannot take a request now ("" when it can).
func usable(a gav1.AgentType, v View) string {
	switch a {
	case gav1.AgentQemu:
		if !v.QGA.Present {
			return "the domain has no QEMU guest agent channel"
		}
		if v.QGA.Channel != guest.ChannelConnected {
			return "the QEMU guest agent channel is not connected"
		}
	case gav1.AgentOvirt:
		if !v.OGA.Present {
			return "the domain has no oVirt guest agent channel"
		}
		if v.OGA.Channel != guest.ChannelConnected {
			return "the oVirt guest agent is not connected"
		}
		if !v.OGA.Responsive {
			return "the oVirt guest agent is not responsive"
		}
	}
	return ""
}

func (s *GuestAgentService) send(ctx context.Context, a gav1.AgentType, uuid string, spec gav1.GuestAgentCommandSpec) (string, error) {
	if a == gav1.AgentQemu {
		return s.sendQGA(ctx, uuid, spec)
	}
	if s.opts.OGA == nil {
		return "", oga.ErrNotConnected
	}
	return sendOGA(ctx, s.opts.OGA, uuid, spec)
}

func (s *GuestAgentService) sendQGA(ctx context.Context, uuid string, spec gav1.GuestAgentCommandSpec) (string, error) {
	q := s.opts.QGA
	switch spec.Action {
	case gav1.ActionShutdown:
		halt := spec.Shutdown != nil && spec.Shutdown.Mode == gav1.ShutdownHalt
		return "", q.Shutdown(ctx, uuid, halt)
	case gav1.ActionReboot:
		return "", q.Reboot(ctx, uuid)
	case gav1.ActionFreezeFilesystems:
		var mps []string
		if spec.Freeze != nil {
			mps = spec.Freeze.Mountpoints
		}
		frozen, err := q.FreezeFilesystems(ctx, uuid, mps)
		if err != nil {
			return "", err
		}
		if !frozen {
			return "", errNothingFrozen
		}
		after := s.scheduleThaw(uuid, spec)
		return fmt.Sprintf("filesystems frozen; they are thawed automatically after %s unless thawed before", after), nil
	case gav1.ActionThawFilesystems:
		if err := q.ThawFilesystems(ctx, uuid); err != nil {
			return "", err
		}
		return "filesystems thawed", nil
	case gav1.ActionSetTime:
		return "", q.SetTime(ctx, uuid)
	case gav1.ActionPing:
		if err := q.Ping(ctx, uuid); err != nil {
			return "", err
		}
		return "QEMU guest agent answered guest-ping", nil
	case gav1.ActionSetVCPUs:
		return q.SetVCPUs(ctx, uuid, int(spec.SetVCPUs.Count))
	case gav1.ActionSuspend:
		return "", q.Suspend(ctx, uuid, gav1.SuspendModeOf(&spec))
	}
	return "", fmt.Errorf("%w: %s", errUnsupportedAction, spec.Action)
}

var errUnsupportedAction = errors.New("action not supported by this agent")

// errNothingFrozen fails a freeze the agent accepted without freezing anything: a backup taken
// next would not be consistent, so it must not read as a success.
var errNothingFrozen = errors.New("the QEMU guest agent froze nothing and reports the filesystems thawed: " +
	"the guest has no freezable filesystem, or none of the listed mountpoints is mounted")

func sendOGA(ctx context.Context, ag OvirtAgent, uuid string, spec gav1.GuestAgentCommandSpec) (string, error) {
	switch spec.Action {
	case gav1.ActionShutdown, gav1.ActionReboot:
		var delay int32
		var msg string
		if p := spec.Shutdown; p != nil {
			delay, msg = ptr.Deref(p.DelaySeconds, 0), p.Message
		}
		if p := spec.Reboot; p != nil {
			delay, msg = ptr.Deref(p.DelaySeconds, 0), p.Message
		}
		if msg == "" {
			msg = "System is going down (requested through Kubernetes)"
		}
		return "", ag.Shutdown(ctx, uuid, time.Duration(delay)*time.Second, msg, spec.Action == gav1.ActionReboot)
	case gav1.ActionHook:
		h := spec.Hook
		wait := ptr.Deref(h.WaitForCompletion, true)
		timeout := time.Duration(ptr.Deref(h.TimeoutSeconds, gav1.DefaultHookTimeoutSeconds)) * time.Second
		if err := ag.LifecycleEvent(ctx, uuid, string(h.Name), h.Failure, wait, timeout); err != nil {
			return "", err
		}
		if wait {
			return fmt.Sprintf("hook %s completed in the guest", h.Name), nil
		}
		return fmt.Sprintf("hook %s sent", h.Name), nil
	case gav1.ActionLockScreen:
		return "", ag.LockScreen(ctx, uuid)
	case gav1.ActionLogOff:
		return "", ag.LogOff(ctx, uuid)
	case gav1.ActionSetVCPUs:
		count := int(spec.SetVCPUs.Count)
		n, err := ag.SetNumberOfCPUs(ctx, uuid, count)
		switch {
		case err != nil:
			return "", err
		case n < 0:
			return "", fmt.Errorf("the oVirt guest agent took set-number-of-cpus %d but cannot tell how many CPUs the guest has", count)
		case n != count:
			return "", fmt.Errorf("the oVirt guest agent took set-number-of-cpus %d but reports %d CPUs online "+
				"(the Linux agent brings no CPU online or offline; the QEMU guest agent does)", count, n)
		}
		return fmt.Sprintf("the oVirt guest agent reports %d CPUs online", n), nil
	case gav1.ActionSuspend:
		// The oVirt agent's hibernate knows mem and disk; there is no hybrid (validation refuses it).
		switch gav1.SuspendModeOf(&spec) {
		case gav1.SuspendRam:
			return "", ag.Hibernate(ctx, uuid, "mem")
		case gav1.SuspendDisk:
			return "", ag.Hibernate(ctx, uuid, "disk")
		}
		return "", fmt.Errorf("%w: suspend mode %s", errUnsupportedAction, gav1.SuspendModeOf(&spec))
	case gav1.ActionPing:
		// The oVirt agent has no ping: a responsive agent (a valid message within the
		// responsiveness window) is the answer; usable() checked it.
		return "oVirt guest agent is responsive", nil
	}
	return "", fmt.Errorf("%w: %s", errUnsupportedAction, spec.Action)
}

// checkVCPUs refuses a SetVCPUs count the domain cannot have, before any agent is asked: more
// than the domain's maximum vCPUs, or more than are plugged in (the guest sees only those).
// Failing to read the domain's vCPUs leaves the check to the agents, which refuse counts beyond
// the guest's vCPUs.
func (s *GuestAgentService) checkVCPUs(ctx context.Context, d virt.Domain, p *gav1.SetVCPUsParams) *ExecError {
	if p == nil {
		return execErr(gav1.ReasonInvalidSpec, "action SetVCPUs needs setVCPUs.count")
	}
	count := int(p.Count)
	if count < 1 {
		return execErr(gav1.ReasonInvalidSpec, "setVCPUs.count %d: at least one vCPU must stay online", count)
	}
	if s.opts.VCPUs == nil || !d.Libvirt() {
		return nil
	}
	cur, maxVCPUs, err := s.opts.VCPUs.VCPUs(ctx, d.UUID)
	if err != nil {
		s.log.V(1).Info("Cannot read the domain's vCPUs; the agents check the count", "domainUUID", d.UUID, "err", err.Error())
		return nil
	}
	switch {
	case count > maxVCPUs:
		return execErr(gav1.ReasonInvalidSpec, "setVCPUs.count %d is more than domain %s's maximum of %d vCPUs", count, d.Name, maxVCPUs)
	case count > cur:
		return execErr(gav1.ReasonInvalidSpec, "setVCPUs.count %d is more than the %d vCPUs plugged into domain %s (maximum %d): "+
			"hot-plug vCPUs first (virsh setvcpus --live)", count, cur, d.Name, maxVCPUs)
	}
	return nil
}

// fallback takes the ACPI power button when the spec asks for it and the action is a power
// action. tried is false when no fallback applies.
func (s *GuestAgentService) fallback(ctx context.Context, uuid string, spec gav1.GuestAgentCommandSpec, failures []string) (Result, error, bool) {
	if spec.Fallback != gav1.FallbackACPI || s.opts.PowerButton == nil {
		return Result{}, nil, false
	}
	var err error
	switch spec.Action {
	case gav1.ActionShutdown:
		err = s.opts.PowerButton.ACPIShutdown(ctx, uuid)
	case gav1.ActionReboot:
		err = s.opts.PowerButton.ACPIReboot(ctx, uuid)
	default:
		return Result{}, nil, false
	}
	prefix := ""
	if len(failures) > 0 {
		prefix = "agents failed (" + strings.Join(failures, "; ") + "); "
	}
	if err != nil {
		return Result{}, execErr(gav1.ReasonFallbackFailed, "%sACPI fallback failed: %v", prefix, err), true
	}
	return Result{Agents: []gav1.AgentType{gav1.AgentACPI},
		Message: prefix + fmt.Sprintf("%s delivered through the ACPI power button (fallback)", spec.Action)}, nil, true
}

// scheduleThaw thaws the domain's filesystems after the freeze's deadline, so a forgotten freeze
// never hangs the guest. A ThawFilesystems command before that makes the late thaw a no-op.
func (s *GuestAgentService) scheduleThaw(uuid string, spec gav1.GuestAgentCommandSpec) time.Duration {
	after := time.Duration(gav1.DefaultThawAfterSeconds) * time.Second
	if spec.Freeze != nil && spec.Freeze.ThawAfterSeconds != nil {
		after = time.Duration(*spec.Freeze.ThawAfterSeconds) * time.Second
	}
	s.background(func(parent context.Context) {
		t := time.NewTimer(after)
		defer t.Stop()
		select {
		case <-parent.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(parent, 10*time.Second)
		defer cancel()
		if err := s.opts.QGA.ThawFilesystems(ctx, uuid); err != nil {
			s.log.Error(err, "Automatic thaw failed", "domainUUID", uuid)
			return
		}
		s.log.Info("Filesystems thawed automatically after the freeze deadline", "domainUUID", uuid)
	})
	return after
}

// classify maps an agent error to an API reason.
func classify(err error) string {
	var te interface{ Timeout() bool }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &te) && te.Timeout(), errors.Is(err, oga.ErrNoCompletion):
		return gav1.ReasonAgentTimeout
	case errors.Is(err, oga.ErrNotConnected):
		return gav1.ReasonAgentUnavailable
	case errors.Is(err, errUnsupportedAction), errors.Is(err, oga.ErrUnsupportedByGuestVersion):
		return gav1.ReasonAgentUnsupported
	}
	var c interface{ ErrorClass() string }
	if errors.As(err, &c) {
		switch c.ErrorClass() {
		case "Timeout":
			return gav1.ReasonAgentTimeout
		case "NotConnected", "DomainNotRunning":
			return gav1.ReasonAgentUnavailable
		case "Unsupported":
			return gav1.ReasonAgentUnsupported
		}
	}
	return gav1.ReasonAgentError
}

func joinAgents(a []gav1.AgentType) string {
	s := make([]string, len(a))
	for i := range a {
		s[i] = string(a[i])
	}
	return strings.Join(s, " and ")
}
