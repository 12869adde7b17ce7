package v1alpha1

import (
	"fmt"
	"strings"
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
// freeze/thaw and time sync only in QGA, and both agents answer a ping.
var actionSupport = map[Action]ActionSupport{
	ActionShutdown:          {Agents: []AgentType{AgentQemu, AgentOvirt}, Fallback: true},
	ActionReboot:            {Agents: []AgentType{AgentQemu, AgentOvirt}, Fallback: true},
	ActionHook:              {Agents: []AgentType{AgentOvirt}},
	ActionLockScreen:        {Agents: []AgentType{AgentOvirt}},
	ActionLogOff:            {Agents: []AgentType{AgentOvirt}},
	ActionFreezeFilesystems: {Agents: []AgentType{AgentQemu}},
	ActionThawFilesystems:   {Agents: []AgentType{AgentQemu}},
	ActionSetTime:           {Agents: []AgentType{AgentQemu}},
	ActionPing:              {Agents: []AgentType{AgentQemu, AgentOvirt}},
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
	if spec.Agent == AgentSelectQemu {
		var delay *int32
		var msg string
		switch {
		case spec.Shutdown != nil:
			delay, msg = spec.Shutdown.DelaySeconds, spec.Shutdown.Message
		case spec.Reboot != nil:
			delay, msg = spec.Reboot.DelaySeconds, spec.Reboot.Message
		}
		if delay != nil && *delay > 0 {
			errs = append(errs, "delaySeconds is served only by the oVirt guest agent, but agent is QemuGuestAgent")
		}
		if msg != "" {
			errs = append(errs, "message is served only by the oVirt guest agent, but agent is QemuGuestAgent")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func joinAgents(agents []AgentType) string {
	s := make([]string, len(agents))
	for i, a := range agents {
		s[i] = string(a)
	}
	return strings.Join(s, " or ")
}
