package v1alpha1

import (
	"slices"
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
		{ActionSetVCPUs, AgentAuto, []AgentType{q, o}, ""},
		{ActionSetVCPUs, AgentSelectOvirt, []AgentType{o}, ""},
		{ActionSetVCPUs, AgentBoth, []AgentType{q, o}, ""},
		{Action("Dance"), AgentAuto, nil, "unknown action"},
		{ActionPing, AgentSelector("Nobody"), nil, "unknown agent selector"},
		{ActionHibernate, AgentAuto, []AgentType{o}, ""},
		{ActionHibernate, AgentSelectQemu, nil, "only OvirtGuestAgent"},
		{ActionSuspend, AgentAuto, []AgentType{q, o}, ""},
		{ActionSuspend, AgentBoth, []AgentType{q, o}, ""},
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
		ActionFreezeFilesystems, ActionThawFilesystems, ActionSetTime, ActionSetVCPUs, ActionPing, ActionHibernate, ActionSuspend} {
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
		{Action: ActionShutdown, Agent: AgentAuto, Power: &PowerPolicy{Methods: []PowerMethod{PowerOvirt, PowerACPI, PowerDestroy}},
			Shutdown: &ShutdownParams{DelaySeconds: int32p(60), Message: "bye"}},
		{Action: ActionReboot, Power: &PowerPolicy{Methods: []PowerMethod{PowerQemu}, GracePeriodSeconds: int32p(5)}, DeadlineSeconds: int32p(5)},
		{Action: ActionShutdown, Agent: AgentSelectQemu, Shutdown: &ShutdownParams{Mode: ShutdownHalt}},
		{Action: ActionHibernate, Agent: AgentAuto},
		{Action: ActionHibernate, Agent: AgentSelectOvirt, Hibernate: &HibernateParams{LockTimeoutSeconds: int32p(5), HookTimeoutSeconds: int32p(20)}},
		{Action: ActionSuspend, Agent: AgentAuto},
		{Action: ActionSuspend, Agent: AgentAuto, Suspend: &SuspendParams{Mode: SuspendHybrid}},
		{Action: ActionSuspend, Agent: AgentSelectOvirt, Suspend: &SuspendParams{Mode: SuspendDisk}},
		{Action: ActionSuspend, Power: &PowerPolicy{Methods: []PowerMethod{PowerQemu}, GracePeriodSeconds: int32p(30)}, Suspend: &SuspendParams{Mode: SuspendHybrid}},
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
		"delaySeconds is served only by the oVirt guest agent, but the power methods include QemuGuestAgent": {
			Action: ActionShutdown, Agent: AgentAuto, Shutdown: &ShutdownParams{DelaySeconds: int32p(10)}},
		"message is served only by the oVirt guest agent": {Action: ActionReboot,
			Power: &PowerPolicy{Methods: []PowerMethod{PowerACPI, PowerQemu}}, Reboot: &RebootParams{Message: "hi"}},
		"listed twice":                     {Action: ActionShutdown, Power: &PowerPolicy{Methods: []PowerMethod{PowerACPI, PowerQemu, PowerACPI}}},
		"power.methods is empty":           {Action: ActionShutdown, Power: &PowerPolicy{Methods: []PowerMethod{}}},
		`unknown power method "Hibernate"`: {Action: ActionShutdown, Power: &PowerPolicy{Methods: []PowerMethod{"Hibernate"}}},
		"replaces agent and fallback": {Action: ActionShutdown, Agent: AgentAuto, Fallback: FallbackACPI,
			Power: &PowerPolicy{Methods: []PowerMethod{PowerQemu}}},
		"power is only for Shutdown, Reboot and Suspend": {Action: ActionPing, Power: &PowerPolicy{Methods: []PowerMethod{PowerQemu}}},
		"deadlineSeconds 120 is shorter than the power policy's waits (3 methods x gracePeriodSeconds 60 = 180s)": {
			Action: ActionShutdown, Agent: AgentAuto, DeadlineSeconds: int32p(120)},
		"mode Halt is served only by the QEMU guest agent":           {Action: ActionShutdown, Shutdown: &ShutdownParams{Mode: ShutdownHalt}},
		`unknown power method "ManagedSave"`:                         {Action: ActionShutdown, Power: &PowerPolicy{Methods: []PowerMethod{PowerManagedSave}}},
		"action Hibernate cannot be served by QemuGuestAgent":        {Action: ActionHibernate, Agent: AgentSelectQemu},
		"agent Both needs an action both agents serve":               {Action: ActionHibernate, Agent: AgentBoth},
		"fallback ACPI exists only for power actions, not Hibernate": {Action: ActionHibernate, Fallback: FallbackACPI},
		"power is only for Shutdown, Reboot and Suspend, not Hibernate": {Action: ActionHibernate,
			Power: &PowerPolicy{Methods: []PowerMethod{PowerQemu}}},
		"deadlineSeconds 30 leaves no time for the save": {Action: ActionHibernate, DeadlineSeconds: int32p(30)},
		"hibernate parameters need action Hibernate":     {Action: ActionSuspend, Hibernate: &HibernateParams{}},
		"suspend parameters need action Suspend":         {Action: ActionHibernate, Suspend: &SuspendParams{Mode: SuspendRam}},
		"mode Hybrid is served only by the QEMU guest agent": {Action: ActionSuspend, Agent: AgentSelectOvirt,
			Suspend: &SuspendParams{Mode: SuspendHybrid}},
		"mode Hybrid is served only by the QEMU guest agent (guest-suspend-hybrid)": {Action: ActionSuspend, Agent: AgentBoth,
			Suspend: &SuspendParams{Mode: SuspendHybrid}},
		"power method ACPI cannot suspend a guest":                 {Action: ActionSuspend, Power: &PowerPolicy{Methods: []PowerMethod{PowerQemu, PowerACPI}}},
		"fallback ACPI exists only for power actions, not Suspend": {Action: ActionSuspend, Fallback: FallbackACPI},
		"deadlineSeconds 60 is shorter than the power policy's waits (2 methods x gracePeriodSeconds 60 = 120s)": {
			Action: ActionSuspend, DeadlineSeconds: int32p(60)},
	}
	for want, s := range bad {
		if err := ValidateCommandSpec(&s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateCommandSpec(%+v) = %v, want an error mentioning %q", s, err, want)
		}
	}
}

func TestPowerMethods(t *testing.T) {
	cases := []struct {
		spec GuestAgentCommandSpec
		want []PowerMethod
	}{
		{GuestAgentCommandSpec{Action: ActionShutdown, Agent: AgentAuto}, []PowerMethod{PowerQemu, PowerOvirt, PowerACPI}},
		{GuestAgentCommandSpec{Action: ActionShutdown, Agent: AgentSelectQemu}, []PowerMethod{PowerQemu}},
		{GuestAgentCommandSpec{Action: ActionShutdown, Agent: AgentSelectOvirt, Fallback: FallbackACPI}, []PowerMethod{PowerOvirt, PowerACPI}},
		{GuestAgentCommandSpec{Action: ActionReboot, Agent: AgentBoth}, []PowerMethod{PowerQemu, PowerOvirt}},
		{GuestAgentCommandSpec{Action: ActionReboot, Power: &PowerPolicy{Methods: []PowerMethod{PowerACPI, PowerDestroy}}},
			[]PowerMethod{PowerACPI, PowerDestroy}},
		{GuestAgentCommandSpec{Action: ActionSuspend, Agent: AgentAuto}, []PowerMethod{PowerQemu, PowerOvirt}},
		{GuestAgentCommandSpec{Action: ActionSuspend, Suspend: &SuspendParams{Mode: SuspendDisk}}, []PowerMethod{PowerQemu, PowerOvirt}},
		{GuestAgentCommandSpec{Action: ActionSuspend, Suspend: &SuspendParams{Mode: SuspendHybrid}}, []PowerMethod{PowerQemu}},
		{GuestAgentCommandSpec{Action: ActionSuspend, Agent: AgentSelectOvirt}, []PowerMethod{PowerOvirt}},
	}
	for _, c := range cases {
		if got := PowerMethods(&c.spec); !slices.Equal(got, c.want) {
			t.Errorf("PowerMethods(%+v) = %v, want %v", c.spec, got, c.want)
		}
	}
	if DefaultPowerMethods[0] != PowerQemu || slices.Contains(DefaultPowerMethods, PowerDestroy) {
		t.Errorf("default methods %v: must start with QemuGuestAgent and never destroy", DefaultPowerMethods)
	}
}

func agentStrings(a []AgentType) []string {
	s := make([]string, len(a))
	for i := range a {
		s[i] = string(a[i])
	}
	return s
}
