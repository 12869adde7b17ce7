package v1alpha1

import (
	"strings"
	"testing"
)

func TestSelectAgents(t *testing.T) {
	q, o := AgentQemu, AgentOvirt
	tests := []struct {
		action  Action
		sel     AgentSelector
		want    []AgentType
		wantErr string
	}{
		{ActionShutdown, AgentAuto, []AgentType{q, o}, ""},
		{ActionReboot, "", []AgentType{q, o}, ""},
		{ActionReboot, AgentBoth, []AgentType{q, o}, ""},
		{ActionShutdown, AgentSelectOvirt, []AgentType{o}, ""},
		{ActionPing, AgentSelectQemu, []AgentType{q}, ""},
		{ActionHook, AgentAuto, []AgentType{o}, ""},
		{ActionHook, AgentSelectQemu, nil, "only OvirtGuestAgent"},
		{ActionHook, AgentBoth, nil, "agent Both"},
		{ActionLockScreen, AgentSelectQemu, nil, "only OvirtGuestAgent"},
		{ActionLogOff, AgentSelectOvirt, []AgentType{o}, ""},
		{ActionFreezeFilesystems, AgentSelectOvirt, nil, "only QemuGuestAgent"},
		{ActionThawFilesystems, AgentAuto, []AgentType{q}, ""},
		{ActionSetTime, AgentBoth, nil, "agent Both"},
		{Action("Dance"), AgentAuto, nil, "unknown action"},
		{ActionPing, AgentSelector("Nobody"), nil, "unknown agent selector"},
	}
	for _, tt := range tests {
		got, err := SelectAgents(tt.action, tt.sel)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("SelectAgents(%s, %s) error = %v, want it to mention %q", tt.action, tt.sel, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(agentStrings(got), ",") != strings.Join(agentStrings(tt.want), ",") {
			t.Errorf("SelectAgents(%s, %s) = %v, %v; want %v", tt.action, tt.sel, got, err, tt.want)
		}
	}
}

func TestEveryActionHasSupport(t *testing.T) {
	for _, a := range []Action{ActionShutdown, ActionReboot, ActionHook, ActionLockScreen, ActionLogOff,
		ActionFreezeFilesystems, ActionThawFilesystems, ActionSetTime, ActionPing} {
		s, ok := SupportFor(a)
		if !ok || len(s.Agents) == 0 {
			t.Errorf("action %s has no agent in the table", a)
		}
		wantFallback := a == ActionShutdown || a == ActionReboot
		if s.Fallback != wantFallback {
			t.Errorf("action %s: fallback = %v, want %v", a, s.Fallback, wantFallback)
		}
	}
	s, _ := SupportFor(ActionShutdown)
	s.Agents[0] = AgentACPI // a copy: must not alter the table
	if !CanServe(AgentQemu, ActionShutdown) || CanServe(AgentACPI, ActionShutdown) {
		t.Fatal("SupportFor returned the table's own slice")
	}
}

func TestValidateCommandSpec(t *testing.T) {
	ok := []GuestAgentCommandSpec{
		{Action: ActionShutdown, Agent: AgentAuto, Fallback: FallbackACPI},
		{Action: ActionReboot, Agent: AgentSelectOvirt, Reboot: &RebootParams{DelaySeconds: int32p(30), Message: "bye"}},
		{Action: ActionReboot, Agent: AgentSelectQemu, Reboot: &RebootParams{DelaySeconds: int32p(0)}},
		{Action: ActionHook, Agent: AgentAuto, Hook: &HookParams{Name: HookBeforeMigration}},
		{Action: ActionPing, Agent: AgentBoth},
	}
	for _, s := range ok {
		if err := ValidateCommandSpec(&s); err != nil {
			t.Errorf("ValidateCommandSpec(%+v) = %v, want nil", s, err)
		}
	}
	bad := map[string]GuestAgentCommandSpec{
		"OvirtGuestAgent": {Action: ActionHook, Agent: AgentSelectQemu, Hook: &HookParams{Name: HookAfterMigration}},
		"fallback ACPI":   {Action: ActionPing, Agent: AgentAuto, Fallback: FallbackACPI},
		"delaySeconds":    {Action: ActionShutdown, Agent: AgentSelectQemu, Shutdown: &ShutdownParams{DelaySeconds: int32p(10)}},
		"message":         {Action: ActionReboot, Agent: AgentSelectQemu, Reboot: &RebootParams{Message: "hi"}},
	}
	for want, s := range bad {
		if err := ValidateCommandSpec(&s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateCommandSpec(%+v) = %v, want an error mentioning %q", s, err, want)
		}
	}
}

func agentStrings(a []AgentType) []string {
	s := make([]string, len(a))
	for i := range a {
		s[i] = string(a[i])
	}
	return s
}
