package v1alpha1

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ActionSupport says which guest agents can serve an action.
type ActionSupport struct {
	// Agents can serve the action, in agentd's order of preference for AgentAuto.
	Agents []AgentType
	// Fallback reports whether a host-side fallback (FallbackACPI) may stand in for the agents.
	Fallback bool
}

// actionSupport is the action/agent table. Power actions go to QGA first (it acts at once and
// needs no session), hooks, screen lock and log-off exist only in the oVirt agent, filesystem
// freeze/thaw and time sync only in QGA, and both agents answer a ping. SetVCPUs prefers QGA,
// which onlines and offlines the guest's vCPUs itself (guest-set-vcpus); the oVirt agent's
// set-number-of-cpus succeeds only when the guest then reports the asked count.
// A Hibernate's agent steps (screen lock, hooks) exist only in the oVirt agent; its save is
// libvirt's. A Suspend goes to QGA (through libvirt) first, the oVirt agent's hibernate second.
var actionSupport = map[Action]ActionSupport{
	ActionShutdown:          {Agents: []AgentType{AgentQemu, AgentOvirt}, Fallback: true},
	ActionReboot:            {Agents: []AgentType{AgentQemu, AgentOvirt}, Fallback: true},
	ActionHook:              {Agents: []AgentType{AgentOvirt}},
	ActionLockScreen:        {Agents: []AgentType{AgentOvirt}},
	ActionLogOff:            {Agents: []AgentType{AgentOvirt}},
	ActionFreezeFilesystems: {Agents: []AgentType{AgentQemu}},
	ActionThawFilesystems:   {Agents: []AgentType{AgentQemu}},
	ActionSetTime:           {Agents: []AgentType{AgentQemu}},
	ActionSetVCPUs:          {Agents: []AgentType{AgentQemu, AgentOvirt}},
	ActionPing:              {Agents: []AgentType{AgentQemu, AgentOvirt}},
	ActionHibernate:         {Agents: []AgentType{AgentOvirt}},
	ActionSuspend:           {Agents: []AgentType{AgentQemu, AgentOvirt}},
}

// SupportFor returns which agents can serve action a; ok is false for an unknown action.
func SupportFor(a Action) (support ActionSupport, ok bool) {
	s, ok := actionSupport[a]
	if !ok {
		return ActionSupport{}, false
	}
	return ActionSupport{Agents: append([]AgentType(nil), s.Agents...), Fallback: s.Fallback}, true
}

// CanServe reports whether agent can serve action a.
func CanServe(agent AgentType, a Action) bool {
	for _, x := range actionSupport[a].Agents {
		if x == agent {
			return true
		}
	}
	return false
}

// SelectAgents resolves an agent selector for action a into the agents to use, in order of
// preference. AgentAuto (or "") yields every agent that can serve a; a named agent must be able to
// serve a; AgentBoth needs both agents to serve a. The error explains an impossible combination.
// The fallback is not included: it is taken only when every selected agent failed to serve.
func SelectAgents(a Action, sel AgentSelector) ([]AgentType, error) {
	s, ok := actionSupport[a]
	if !ok {
		return nil, fmt.Errorf("unknown action %q", a)
	}
	switch sel {
	case AgentAuto, "":
		return append([]AgentType(nil), s.Agents...), nil
	case AgentSelectQemu, AgentSelectOvirt:
		agent := AgentType(sel)
		if !CanServe(agent, a) {
			return nil, fmt.Errorf("action %s cannot be served by %s: only %s can serve it", a, agent, joinAgents(s.Agents))
		}
		return []AgentType{agent}, nil
	case AgentBoth:
		if !CanServe(AgentQemu, a) || !CanServe(AgentOvirt, a) {
			return nil, fmt.Errorf("agent Both needs an action both agents serve, but %s is served only by %s; use Auto or %s",
				a, joinAgents(s.Agents), joinAgents(s.Agents))
		}
		return []AgentType{AgentQemu, AgentOvirt}, nil
	default:
		return nil, fmt.Errorf("unknown agent selector %q", sel)
	}
}

// ValidateCommandSpec checks the semantics of a spec that the CRD schema cannot express: that
// the selected agents can serve the action at all, that a fallback is only asked for where it
// exists, and that oVirt-only parameters are not sent to an agent that ignores them. The CRD
// already checks the shape (enums, parameter blocks matching the action).
func ValidateCommandSpec(spec *GuestAgentCommandSpec) error {
	var errs []string
	if _, err := SelectAgents(spec.Action, spec.Agent); err != nil {
		errs = append(errs, err.Error())
	}
	if spec.Fallback == FallbackACPI {
		if s, ok := actionSupport[spec.Action]; ok && !s.Fallback {
			errs = append(errs, fmt.Sprintf("fallback ACPI exists only for power actions, not %s", spec.Action))
		}
	}
	if spec.Power != nil && !IsPolicyAction(spec.Action) {
		errs = append(errs, fmt.Sprintf("power is only for Shutdown, Reboot and Suspend, not %s", spec.Action))
	}
	if IsPolicyAction(spec.Action) {
		errs = append(errs, validatePower(spec)...)
	}
	if spec.Hibernate != nil && spec.Action != ActionHibernate {
		errs = append(errs, fmt.Sprintf("hibernate parameters need action Hibernate, not %s", spec.Action))
	}
	if spec.Suspend != nil && spec.Action != ActionSuspend {
		errs = append(errs, fmt.Sprintf("suspend parameters need action Suspend, not %s", spec.Action))
	}
	if spec.Action == ActionHibernate {
		errs = append(errs, validateHibernate(spec)...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// IsPowerAction reports whether a is Shutdown or Reboot.
func IsPowerAction(a Action) bool { return a == ActionShutdown || a == ActionReboot }

// IsPolicyAction reports whether a is run as a power policy: Shutdown, Reboot or Suspend.
func IsPolicyAction(a Action) bool { return IsPowerAction(a) || a == ActionSuspend }

// SuspendModeOf returns a Suspend's mode (Ram when not given).
func SuspendModeOf(spec *GuestAgentCommandSpec) SuspendMode {
	if spec.Suspend != nil && spec.Suspend.Mode != "" {
		return spec.Suspend.Mode
	}
	return SuspendRam
}

// HibernateTimeouts returns a Hibernate's wait for the screen lock and for the before_hibernation
// hooks' completion.
func HibernateTimeouts(spec *GuestAgentCommandSpec) (lock, hook time.Duration) {
	l, h := DefaultLockTimeoutSeconds, DefaultHookTimeoutSeconds
	if p := spec.Hibernate; p != nil {
		if p.LockTimeoutSeconds != nil {
			l = *p.LockTimeoutSeconds
		}
		if p.HookTimeoutSeconds != nil {
			h = *p.HookTimeoutSeconds
		}
	}
	return time.Duration(l) * time.Second, time.Duration(h) * time.Second
}

// DefaultPowerMethods are the methods of a power policy that names none, with agent Auto.
var DefaultPowerMethods = []PowerMethod{PowerQemu, PowerOvirt, PowerACPI}

// PowerMethods returns the methods of a power action's policy, in order: spec.power.methods when
// given, else derived from agent and fallback: Auto gives DefaultPowerMethods (Suspend:
// QemuGuestAgent then OvirtGuestAgent, mode Hybrid QemuGuestAgent alone); QemuGuestAgent or
// OvirtGuestAgent that agent; Both QemuGuestAgent then OvirtGuestAgent; fallback ACPI appends ACPI.
func PowerMethods(spec *GuestAgentCommandSpec) []PowerMethod {
	if spec.Power != nil && len(spec.Power.Methods) > 0 {
		return append([]PowerMethod(nil), spec.Power.Methods...)
	}
	var m []PowerMethod
	switch spec.Agent {
	case AgentAuto, "":
		if spec.Action == ActionSuspend {
			if SuspendModeOf(spec) == SuspendHybrid {
				return []PowerMethod{PowerQemu}
			}
			return []PowerMethod{PowerQemu, PowerOvirt}
		}
		return append(m, DefaultPowerMethods...)
	case AgentSelectQemu:
		m = []PowerMethod{PowerQemu}
	case AgentSelectOvirt:
		m = []PowerMethod{PowerOvirt}
	case AgentBoth:
		m = []PowerMethod{PowerQemu, PowerOvirt}
	}
	if spec.Fallback == FallbackACPI {
		m = append(m, PowerACPI)
	}
	return m
}

// PowerGracePeriod returns the grace period of each step of a power policy.
func PowerGracePeriod(spec *GuestAgentCommandSpec) time.Duration {
	g := DefaultPowerGracePeriodSeconds
	if spec.Power != nil && spec.Power.GracePeriodSeconds != nil {
		g = *spec.Power.GracePeriodSeconds
	}
	return time.Duration(g) * time.Second
}

// validatePower checks a power action's policy: known, unique methods (the CRD checks them too),
// power.methods not mixed with agent/fallback, options only methods that honour them, and waits
// that fit in the deadline.
func validatePower(spec *GuestAgentCommandSpec) []string {
	var errs []string
	if p := spec.Power; p != nil {
		if p.Methods != nil && len(p.Methods) == 0 {
			errs = append(errs, "power.methods is empty: list at least one of QemuGuestAgent, OvirtGuestAgent, ACPI, Destroy")
		}
		if len(p.Methods) > 4 {
			errs = append(errs, fmt.Sprintf("power.methods has %d entries; at most 4", len(p.Methods)))
		}
		if len(p.Methods) > 0 && ((spec.Agent != AgentAuto && spec.Agent != "") || (spec.Fallback != FallbackNone && spec.Fallback != "")) {
			errs = append(errs, "power.methods replaces agent and fallback: leave agent Auto and fallback None")
		}
		seen := map[PowerMethod]bool{}
		for _, m := range p.Methods {
			switch m {
			case PowerQemu, PowerOvirt, PowerACPI, PowerDestroy:
			default:
				errs = append(errs, fmt.Sprintf("unknown power method %q: use QemuGuestAgent, OvirtGuestAgent, ACPI or Destroy", m))
			}
			if seen[m] {
				errs = append(errs, fmt.Sprintf("power method %s is listed twice", m))
			}
			seen[m] = true
		}
	}
	methods := PowerMethods(spec)
	if spec.Action == ActionSuspend {
		for _, m := range methods {
			if m != PowerQemu && m != PowerOvirt {
				errs = append(errs, fmt.Sprintf("a Suspend is served only by the guest agents: power method %s cannot suspend a guest; "+
					"list QemuGuestAgent and/or OvirtGuestAgent", m))
			}
		}
		if SuspendModeOf(spec) == SuspendHybrid && slices.Contains(methods, PowerOvirt) {
			errs = append(errs, "mode Hybrid is served only by the QEMU guest agent (guest-suspend-hybrid); the oVirt agent's hibernate "+
				"has no hybrid state: drop OvirtGuestAgent (agent Auto or QemuGuestAgent), or use mode Ram or Disk")
		}
	}
	if slices.Contains(methods, PowerQemu) {
		var delay *int32
		var msg string
		switch {
		case spec.Shutdown != nil:
			delay, msg = spec.Shutdown.DelaySeconds, spec.Shutdown.Message
		case spec.Reboot != nil:
			delay, msg = spec.Reboot.DelaySeconds, spec.Reboot.Message
		}
		if delay != nil && *delay > 0 {
			errs = append(errs, "delaySeconds is served only by the oVirt guest agent, but the power methods include QemuGuestAgent "+
				"(its guest-shutdown acts at once): list only OvirtGuestAgent (and ACPI/Destroy), or drop delaySeconds")
		}
		if msg != "" {
			errs = append(errs, "message is served only by the oVirt guest agent, but the power methods include QemuGuestAgent "+
				"(its guest-shutdown shows no message): list only OvirtGuestAgent (and ACPI/Destroy), or drop message")
		}
	}
	if spec.Shutdown != nil && spec.Shutdown.Mode == ShutdownHalt && slices.ContainsFunc(methods, func(m PowerMethod) bool { return m != PowerQemu }) {
		errs = append(errs, "mode Halt is served only by the QEMU guest agent: with mode Halt list only QemuGuestAgent in power.methods")
	}
	deadline := DefaultDeadlineSeconds
	if spec.DeadlineSeconds != nil {
		deadline = *spec.DeadlineSeconds
	}
	grace := PowerGracePeriod(spec)
	if total := time.Duration(len(methods)) * grace; len(methods) > 0 && total > time.Duration(deadline)*time.Second {
		errs = append(errs, fmt.Sprintf("deadlineSeconds %d is shorter than the power policy's waits (%d methods x gracePeriodSeconds %d = %ds): "+
			"raise deadlineSeconds, lower power.gracePeriodSeconds or list fewer methods", deadline, len(methods), int(grace/time.Second), int(total/time.Second)))
	}
	return errs
}

// validateHibernate checks a Hibernate: an agent that can prepare the guest (the oVirt agent:
// Auto or OvirtGuestAgent; SelectAgents refuses the others), and waits that leave time for the
// save within the deadline.
func validateHibernate(spec *GuestAgentCommandSpec) []string {
	var errs []string
	deadline := DefaultDeadlineSeconds
	if spec.DeadlineSeconds != nil {
		deadline = *spec.DeadlineSeconds
	}
	lock, hook := HibernateTimeouts(spec)
	if total := lock + hook; total >= time.Duration(deadline)*time.Second {
		errs = append(errs, fmt.Sprintf("deadlineSeconds %d leaves no time for the save after the guest's preparation "+
			"(lockTimeoutSeconds %d + hookTimeoutSeconds %d = %ds): raise deadlineSeconds or lower the timeouts",
			deadline, int(lock/time.Second), int(hook/time.Second), int(total/time.Second)))
	}
	return errs
}

func joinAgents(agents []AgentType) string {
	s := make([]string, len(agents))
	for i, a := range agents {
		s[i] = string(a)
	}
	return strings.Join(s, " or ")
}
