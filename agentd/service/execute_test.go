package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

const testUUID = "0e7e0000-0000-4000-8000-000000000001"

// classedErr is an agent error with a class, as the QGA adapter returns them.
type classedErr struct{ class string }

func (e classedErr) Error() string      { return "guest said no (" + e.class + ")" }
func (e classedErr) ErrorClass() string { return e.class }

type agentState = servicefake.AgentState

const (
	absent       = servicefake.Absent
	down         = servicefake.Down
	unresponsive = servicefake.Unresponsive
	up           = servicefake.Up
	failing      = servicefake.Failing
)

type testRig struct {
	svc   *GuestAgentService
	qga   *servicefake.QGA
	oga   *servicefake.OGA
	power *fakePower
}

// newRig returns a service (not running) that knows one domain whose agents are in the given
// states. Requests do not need Run: Execute reads the service's view of the domain.
func newRig(t *testing.T, domState virt.State, qgaState, ogaState agentState) *testRig {
	t.Helper()
	r := &testRig{qga: servicefake.NewQGA(), oga: servicefake.NewOGA(), power: &fakePower{}}
	r.svc = New(Options{Log: testr.New(t), Watcher: virt.NewFake(), QGA: r.qga, OGA: r.oga, PowerButton: r.power})
	d := servicefake.Domain(testUUID, "vm1", domState, qgaState, ogaState)
	r.svc.handle(virt.Event{Type: virt.EventDomainAdded, Domain: d, Lifecycle: virt.LifecycleDiscovered})
	if qgaState == failing {
		r.qga.FailWith = classedErr{class: "GuestError"}
	}
	if ogaState != absent && d.State.Active() {
		r.oga.Set(testUUID, servicefake.OGAState(ogaState), nil)
		if ogaState == failing {
			r.oga.FailWith = classedErr{class: "GuestError"}
		}
	}
	return r
}

// calls returns every request that reached an agent or the power button, in a stable order.
func (r *testRig) calls() []string {
	var out []string
	for _, c := range r.qga.Calls() {
		out = append(out, "qga "+strings.TrimSuffix(c, " "+testUUID))
	}
	for _, c := range r.oga.Calls() {
		out = append(out, "oga "+strings.TrimSuffix(c, " "+testUUID))
	}
	for _, c := range r.power.Calls() {
		out = append(out, strings.TrimSuffix(c, " "+testUUID))
	}
	return out
}

func TestExecuteRouting(t *testing.T) {
	hook := &gav1.HookParams{Name: gav1.HookBeforeMigration}
	cases := []struct {
		name       string
		action     gav1.Action
		agent      gav1.AgentSelector
		fallback   gav1.Fallback
		qga, oga   agentState
		domState   virt.State
		wantAgents []gav1.AgentType
		wantReason string // "" for success
		wantCalls  []string
	}{
		// Power actions: QGA first, then OGA, then the explicit ACPI fallback.
		{name: "shutdown auto both up", action: gav1.ActionShutdown, agent: gav1.AgentAuto, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentQemu}, wantCalls: []string{"qga shutdown"}},
		{name: "shutdown auto qga down", action: gav1.ActionShutdown, agent: gav1.AgentAuto, qga: down, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}, wantCalls: []string{"oga shutdown"}},
		{name: "shutdown auto qga failing", action: gav1.ActionShutdown, agent: gav1.AgentAuto, qga: failing, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}, wantCalls: []string{"qga shutdown", "oga shutdown"}},
		{name: "shutdown auto none usable", action: gav1.ActionShutdown, agent: gav1.AgentAuto, qga: down, oga: unresponsive,
			wantReason: gav1.ReasonAgentUnavailable},
		{name: "shutdown auto none usable, ACPI fallback", action: gav1.ActionShutdown, agent: gav1.AgentAuto,
			fallback: gav1.FallbackACPI, qga: down, oga: absent,
			wantAgents: []gav1.AgentType{gav1.AgentACPI}, wantCalls: []string{"acpi-shutdown"}},
		{name: "shutdown auto agents failing, ACPI fallback", action: gav1.ActionShutdown, agent: gav1.AgentAuto,
			fallback: gav1.FallbackACPI, qga: failing, oga: failing,
			wantAgents: []gav1.AgentType{gav1.AgentACPI}, wantCalls: []string{"qga shutdown", "oga shutdown", "acpi-shutdown"}},
		{name: "shutdown fallback not needed", action: gav1.ActionShutdown, agent: gav1.AgentAuto,
			fallback: gav1.FallbackACPI, qga: up, oga: absent,
			wantAgents: []gav1.AgentType{gav1.AgentQemu}, wantCalls: []string{"qga shutdown"}},
		{name: "shutdown explicit qga down: no other agent", action: gav1.ActionShutdown, agent: gav1.AgentSelectQemu,
			qga: down, oga: up, wantReason: gav1.ReasonAgentUnavailable},
		{name: "shutdown explicit ovirt", action: gav1.ActionShutdown, agent: gav1.AgentSelectOvirt, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}, wantCalls: []string{"oga shutdown"}},
		{name: "shutdown explicit qga failing", action: gav1.ActionShutdown, agent: gav1.AgentSelectQemu, qga: failing, oga: up,
			wantReason: gav1.ReasonAgentError, wantCalls: []string{"qga shutdown"}},
		{name: "reboot both", action: gav1.ActionReboot, agent: gav1.AgentBoth, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentQemu, gav1.AgentOvirt}, wantCalls: []string{"qga reboot", "oga reboot"}},
		{name: "reboot both, one down", action: gav1.ActionReboot, agent: gav1.AgentBoth, qga: up, oga: down,
			wantAgents: []gav1.AgentType{gav1.AgentQemu}, wantCalls: []string{"qga reboot"}},
		{name: "reboot ACPI fallback fails", action: gav1.ActionReboot, agent: gav1.AgentAuto, fallback: gav1.FallbackACPI,
			qga: absent, oga: absent, wantReason: gav1.ReasonFallbackFailed, wantCalls: []string{"acpi-reboot"}},
		{name: "shutdown of a stopped domain, ACPI fallback", action: gav1.ActionShutdown, agent: gav1.AgentAuto,
			fallback: gav1.FallbackACPI, qga: up, oga: up, domState: virt.StateShutOff,
			wantAgents: []gav1.AgentType{gav1.AgentACPI}, wantCalls: []string{"acpi-shutdown"}},
		{name: "shutdown of a stopped domain", action: gav1.ActionShutdown, agent: gav1.AgentAuto, qga: up, oga: up,
			domState: virt.StateShutOff, wantReason: gav1.ReasonAgentUnavailable},
		// OGA-only actions.
		{name: "lock screen auto", action: gav1.ActionLockScreen, agent: gav1.AgentAuto, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}, wantCalls: []string{"oga lock"}},
		{name: "lock screen, oga unresponsive", action: gav1.ActionLockScreen, agent: gav1.AgentAuto, qga: up, oga: unresponsive,
			wantReason: gav1.ReasonAgentUnavailable},
		{name: "log off, oga failing", action: gav1.ActionLogOff, agent: gav1.AgentAuto, qga: up, oga: failing,
			wantReason: gav1.ReasonAgentError, wantCalls: []string{"oga logoff"}},
		{name: "hook auto", action: gav1.ActionHook, agent: gav1.AgentAuto, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}, wantCalls: []string{"oga hook:before_migration"}},
		{name: "hook to qga", action: gav1.ActionHook, agent: gav1.AgentSelectQemu, qga: up, oga: up,
			wantReason: gav1.ReasonAgentUnsupported},
		{name: "hook, no oga channel", action: gav1.ActionHook, agent: gav1.AgentAuto, qga: up, oga: absent,
			wantReason: gav1.ReasonAgentUnavailable},
		// QGA-only actions.
		{name: "set time", action: gav1.ActionSetTime, agent: gav1.AgentAuto, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentQemu}, wantCalls: []string{"qga settime"}},
		{name: "set time, qga down", action: gav1.ActionSetTime, agent: gav1.AgentAuto, qga: down, oga: up,
			wantReason: gav1.ReasonAgentUnavailable},
		{name: "thaw", action: gav1.ActionThawFilesystems, agent: gav1.AgentAuto, qga: up, oga: absent,
			wantAgents: []gav1.AgentType{gav1.AgentQemu}, wantCalls: []string{"qga thaw"}},
		// SetVCPUs: QGA first, OGA when QGA cannot serve (count 2 in these cases).
		{name: "set vcpus auto", action: gav1.ActionSetVCPUs, agent: gav1.AgentAuto, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentQemu}, wantCalls: []string{"qga setvcpus 2"}},
		{name: "set vcpus auto, qga down", action: gav1.ActionSetVCPUs, agent: gav1.AgentAuto, qga: down, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}, wantCalls: []string{"oga setcpus:2"}},
		{name: "set vcpus auto, qga failing", action: gav1.ActionSetVCPUs, agent: gav1.AgentAuto, qga: failing, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}, wantCalls: []string{"qga setvcpus 2", "oga setcpus:2"}},
		{name: "set vcpus both", action: gav1.ActionSetVCPUs, agent: gav1.AgentBoth, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentQemu, gav1.AgentOvirt}, wantCalls: []string{"qga setvcpus 2", "oga setcpus:2"}},
		{name: "set vcpus ovirt failing", action: gav1.ActionSetVCPUs, agent: gav1.AgentSelectOvirt, qga: up, oga: failing,
			wantReason: gav1.ReasonAgentError, wantCalls: []string{"oga setcpus:2"}},
		{name: "set vcpus, no agent", action: gav1.ActionSetVCPUs, agent: gav1.AgentAuto, qga: absent, oga: absent,
			wantReason: gav1.ReasonAgentUnavailable},
		// Ping: either agent; OGA's answer is its responsiveness.
		{name: "ping auto", action: gav1.ActionPing, agent: gav1.AgentAuto, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentQemu}, wantCalls: []string{"qga ping"}},
		{name: "ping ovirt", action: gav1.ActionPing, agent: gav1.AgentSelectOvirt, qga: up, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}},
		{name: "ping both, qga absent", action: gav1.ActionPing, agent: gav1.AgentBoth, qga: absent, oga: up,
			wantAgents: []gav1.AgentType{gav1.AgentOvirt}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			domState := c.domState
			if domState == 0 {
				domState = virt.StateRunning
			}
			r := newRig(t, domState, c.qga, c.oga)
			if c.name == "reboot ACPI fallback fails" {
				r.power.failWith = errors.New("libvirt refused")
			}
			spec := gav1.GuestAgentCommandSpec{Action: c.action, Agent: c.agent, Fallback: c.fallback}
			if c.action == gav1.ActionHook {
				spec.Hook = hook
			}
			if c.action == gav1.ActionSetVCPUs {
				spec.SetVCPUs = &gav1.SetVCPUsParams{Count: 2}
			}
			res, err := r.svc.Execute(context.Background(), testUUID, Request{Spec: spec})
			if c.wantReason == "" {
				if err != nil {
					t.Fatalf("Execute failed: %v", err)
				}
				if !slices.Equal(res.Agents, c.wantAgents) {
					t.Errorf("served by %v, want %v", res.Agents, c.wantAgents)
				}
				if res.Message == "" {
					t.Error("no message")
				}
			} else {
				var ee *ExecError
				if !errors.As(err, &ee) || ee.Reason != c.wantReason {
					t.Fatalf("Execute = %v, %v; want reason %s", res, err, c.wantReason)
				}
				if len(res.Agents) != 0 {
					t.Errorf("a failed request names agents %v", res.Agents)
				}
			}
			if got := r.calls(); !slices.Equal(got, c.wantCalls) {
				t.Errorf("calls %q, want %q", got, c.wantCalls)
			}
		})
	}
}

func TestExecuteUnknownDomain(t *testing.T) {
	r := newRig(t, virt.StateRunning, up, up)
	_, err := r.svc.Execute(context.Background(), "0e7e0000-0000-4000-8000-0000000000ff",
		Request{Spec: gav1.GuestAgentCommandSpec{Action: gav1.ActionPing, Agent: gav1.AgentAuto}})
	var ee *ExecError
	if !errors.As(err, &ee) || ee.Reason != gav1.ReasonDomainNotFound {
		t.Fatalf("Execute on an unknown domain = %v, want DomainNotFound", err)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, gav1.ReasonAgentTimeout},
		{classedErr{"Timeout"}, gav1.ReasonAgentTimeout},
		{classedErr{"NotConnected"}, gav1.ReasonAgentUnavailable},
		{classedErr{"DomainNotRunning"}, gav1.ReasonAgentUnavailable},
		{classedErr{"Unsupported"}, gav1.ReasonAgentUnsupported},
		{classedErr{"GuestError"}, gav1.ReasonAgentError},
		{errUnsupportedAction, gav1.ReasonAgentUnsupported},
		{errors.New("anything else"), gav1.ReasonAgentError},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// A request to an agent whose previous call still hangs (libvirt's shutdown through the QEMU
// guest agent waits up to 60 s) is not sent: it gives up when its context ends, without
// reaching the agent. Another agent of the domain and the host-side power control do not wait.
func TestExecuteDoesNotWaitBehindAHungAgentCall(t *testing.T) {
	r := newRig(t, virt.StateRunning, up, up)
	hold := make(chan struct{})
	defer close(hold)
	r.qga.Hold = hold
	shutdown := func(a gav1.AgentSelector) gav1.GuestAgentCommandSpec {
		return gav1.GuestAgentCommandSpec{Action: gav1.ActionShutdown, Agent: a, Fallback: gav1.FallbackNone}
	}
	go func() {
		_, _ = r.svc.Execute(context.Background(), testUUID, Request{Spec: shutdown(gav1.AgentSelectQemu)})
	}()
	NewWithT(t).Eventually(r.qga.Calls).Should(HaveLen(1))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := r.svc.Execute(ctx, testUUID, Request{Spec: shutdown(gav1.AgentSelectQemu)})
	var ee *ExecError
	if !errors.As(err, &ee) || !ee.NotSent || !strings.Contains(err.Error(), "still in progress") {
		t.Fatalf("second QGA request = %v (%+v), want not sent: still in progress", err, ee)
	}
	if n := len(r.qga.Calls()); n != 1 {
		t.Errorf("the second request reached the agent: %d calls", n)
	}
	if _, err := r.svc.Execute(context.Background(), testUUID, Request{Spec: shutdown(gav1.AgentSelectOvirt)}); err != nil {
		t.Fatalf("OGA request behind the hung QGA call: %v", err)
	}
	if err := r.svc.HostPower(context.Background(), testUUID, gav1.ActionShutdown, gav1.PowerACPI); err != nil {
		t.Fatalf("ACPI behind the hung QGA call: %v", err)
	}
}

// fakeVCPUs is libvirt's view of the domain's vCPUs.
type fakeVCPUs struct {
	current, maximum int
	err              error
	asked            int
}

func (f *fakeVCPUs) VCPUs(_ context.Context, _ string) (int, int, error) {
	f.asked++
	return f.current, f.maximum, f.err
}

// TestExecuteSetVCPUs: counts beyond the domain's vCPUs fail as InvalidSpec before any agent is
// asked; the oVirt agent succeeds only when the guest then reports the asked count, and a guest
// that does not (the Linux agent changes nothing) fails the command, also after QGA failed.
func TestExecuteSetVCPUs(t *testing.T) {
	setVCPUs := func(sel gav1.AgentSelector, n int32) Request {
		return Request{Spec: gav1.GuestAgentCommandSpec{Action: gav1.ActionSetVCPUs, Agent: sel, SetVCPUs: &gav1.SetVCPUsParams{Count: n}}}
	}
	rig := func(qgaState, ogaState agentState, v *fakeVCPUs) *testRig {
		r := newRig(t, virt.StateRunning, qgaState, ogaState)
		if v != nil {
			r.svc.opts.VCPUs = v
		}
		return r
	}
	wantFail := func(t *testing.T, err error, reason, msg string) {
		t.Helper()
		var ee *ExecError
		if !errors.As(err, &ee) || ee.Reason != reason || !strings.Contains(err.Error(), msg) {
			t.Fatalf("Execute = %v; want reason %s mentioning %q", err, reason, msg)
		}
	}

	t.Run("above the domain maximum", func(t *testing.T) {
		v := &fakeVCPUs{current: 4, maximum: 4}
		r := rig(up, up, v)
		_, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 5))
		wantFail(t, err, gav1.ReasonInvalidSpec, "setVCPUs.count 5 is more than domain vm1's maximum of 4 vCPUs")
		var ee *ExecError
		if errors.As(err, &ee); !ee.NotSent || len(r.calls()) != 0 {
			t.Fatalf("an agent was asked: %q (NotSent %v)", r.calls(), ee.NotSent)
		}
	})
	t.Run("above the plugged-in vCPUs", func(t *testing.T) {
		r := rig(up, up, &fakeVCPUs{current: 2, maximum: 8})
		_, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 3))
		wantFail(t, err, gav1.ReasonInvalidSpec, "more than the 2 vCPUs plugged into domain vm1 (maximum 8): hot-plug vCPUs first")
		if len(r.calls()) != 0 {
			t.Fatalf("an agent was asked: %q", r.calls())
		}
	})
	t.Run("within the limits", func(t *testing.T) {
		v := &fakeVCPUs{current: 4, maximum: 8}
		r := rig(up, up, v)
		res, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 4))
		if err != nil || !slices.Equal(res.Agents, []gav1.AgentType{gav1.AgentQemu}) || res.Message != "4 of the guest's vCPUs online" {
			t.Fatalf("Execute = %+v, %v", res, err)
		}
		if v.asked != 1 || !slices.Equal(r.calls(), []string{"qga setvcpus 4"}) {
			t.Fatalf("limits asked %d times, calls %q", v.asked, r.calls())
		}
	})
	t.Run("limits unreadable: the agents decide", func(t *testing.T) {
		r := rig(up, absent, &fakeVCPUs{err: errors.New("libvirt: no domain")})
		if _, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 3)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.calls(), []string{"qga setvcpus 3"}) {
			t.Fatalf("calls %q", r.calls())
		}
	})
	t.Run("no parameters", func(t *testing.T) {
		r := rig(up, up, nil)
		_, err := r.svc.Execute(context.Background(), testUUID, Request{Spec: gav1.GuestAgentCommandSpec{Action: gav1.ActionSetVCPUs}})
		wantFail(t, err, gav1.ReasonInvalidSpec, "needs setVCPUs.count")
	})
	t.Run("ovirt agent reports another count", func(t *testing.T) {
		r := rig(failing, up, &fakeVCPUs{current: 4, maximum: 4})
		r.oga.ReportCPUs(testUUID, 4)
		_, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 2))
		wantFail(t, err, gav1.ReasonAgentError, "OvirtGuestAgent: the oVirt guest agent took set-number-of-cpus 2 but reports 4 CPUs online")
		if !strings.Contains(err.Error(), "QemuGuestAgent: guest said no") {
			t.Errorf("the QGA failure is not reported: %v", err)
		}
		if !slices.Equal(r.calls(), []string{"qga setvcpus 2", "oga setcpus:2"}) {
			t.Fatalf("calls %q", r.calls())
		}
	})
	t.Run("ovirt agent cannot tell", func(t *testing.T) {
		r := rig(absent, up, nil)
		r.oga.ReportCPUs(testUUID, -1)
		_, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentSelectOvirt, 2))
		wantFail(t, err, gav1.ReasonAgentError, "cannot tell how many CPUs the guest has")
	})
	t.Run("ovirt agent reports the count", func(t *testing.T) {
		r := rig(absent, up, nil)
		res, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 2))
		if err != nil || !slices.Equal(res.Agents, []gav1.AgentType{gav1.AgentOvirt}) || !strings.HasPrefix(res.Message, "the oVirt guest agent reports 2 CPUs online") {
			t.Fatalf("Execute = %+v, %v", res, err)
		}
	})
	t.Run("ovirt agent below API version 1", func(t *testing.T) {
		r := rig(absent, up, nil)
		r.oga.FailWith = &oga.UnsupportedError{Command: oga.CmdSetNumberOfCPUs, Required: 1, Negotiated: 0}
		_, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 2))
		wantFail(t, err, gav1.ReasonAgentUnsupported, "OvirtGuestAgent")
	})
	t.Run("direct socket domain: no libvirt limits", func(t *testing.T) {
		v := &fakeVCPUs{current: 1, maximum: 1}
		r := newRig(t, virt.StateRunning, up, absent)
		r.svc.opts.VCPUs = v
		d, _ := r.svc.View(testUUID)
		d.Domain.QGASocket = "/run/qga/vm1.sock"
		r.svc.handle(virt.Event{Type: virt.EventDomainUpdated, Domain: d.Domain})
		if _, err := r.svc.Execute(context.Background(), testUUID, setVCPUs(gav1.AgentAuto, 3)); err != nil {
			t.Fatal(err)
		}
		if v.asked != 0 {
			t.Fatal("libvirt was asked about a domain it does not run")
		}
	})
}

// A freeze the agent accepts without freezing anything (no freezable filesystem, no listed
// mountpoint mounted) fails: a backup taken next would not be consistent.
func TestExecuteFreezeThatFrozeNothingFails(t *testing.T) {
	freeze := Request{Spec: gav1.GuestAgentCommandSpec{Action: gav1.ActionFreezeFilesystems, Agent: gav1.AgentAuto}}
	r := newRig(t, virt.StateRunning, up, up)
	res, err := r.svc.Execute(context.Background(), testUUID, freeze)
	if err != nil || !strings.Contains(res.Message, "filesystems frozen") {
		t.Fatalf("freeze = %+v, %v", res, err)
	}
	r = newRig(t, virt.StateRunning, up, up)
	r.qga.NothingToFreeze = true
	_, err = r.svc.Execute(context.Background(), testUUID, freeze)
	var ee *ExecError
	if !errors.As(err, &ee) || ee.Reason != gav1.ReasonAgentError || !strings.Contains(err.Error(), "froze nothing") {
		t.Fatalf("freeze of nothing = %v; want %s saying it froze nothing", err, gav1.ReasonAgentError)
	}
	if got := r.calls(); !slices.Equal(got, []string{"qga freeze"}) {
		t.Fatalf("calls %q", got)
	}
}
