package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/oga/ogafake"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// cmdEnv is one node with three domains: QGA only, OGA only, both agents.
type cmdEnv struct {
	n                *node
	qOnly, oOnly, bo virt.Domain
	gO, gB           *ogafake.Guest
	ns               string
}

func newCmdEnv(t testing.TB, ns string, uuidPrefix string, guestCfg ogafake.Config) *cmdEnv {
	t.Helper()
	e := &cmdEnv{ns: ns}
	var sockO, sockB string
	e.gO, sockO = ogaGuest(t, guestCfg, nil)
	e.gB, sockB = ogaGuest(t, guestCfg, nil)
	e.qOnly = withQGA(domain(uuidPrefix+"-0000-4000-8000-000000000001", "cmd-qga"))
	e.oOnly = withOGA(domain(uuidPrefix+"-0000-4000-8000-000000000002", "cmd-oga"), sockO)
	e.bo = withOGA(withQGA(domain(uuidPrefix+"-0000-4000-8000-000000000003", "cmd-both")), sockB)
	for _, d := range []*virt.Domain{&e.qOnly, &e.oOnly, &e.bo} {
		d.Placement.Namespace = ns
	}
	q := servicefake.NewQGA()
	q.Set(e.qOnly.UUID, debianQGA(), qgaUp("7.2.22"))
	q.Set(e.bo.UUID, debianQGA(), qgaUp("7.2.22"))
	e.n = startNode(t, "node-a", q, e.qOnly, e.oOnly, e.bo)
	ctx := context.Background()
	// Ready when every status exists and the oVirt agents negotiated API 3 (hooks need it).
	for _, d := range []virt.Domain{e.qOnly, e.oOnly, e.bo} {
		NewWithT(t).Eventually(func() error {
			gas, err := getGAS(ctx, ns, d.UUID)
			if err != nil {
				return err
			}
			if d.OGASocketPath != "" && (gas.Status.OvirtAgent == nil || ptr.Deref(gas.Status.OvirtAgent.APIVersion, 0) != 3) {
				return fmt.Errorf("oVirt agent of %s not at API 3 yet", d.Name)
			}
			return nil
		}).WithTimeout(20 * time.Second).Should(Succeed())
	}
	return e
}

func (e *cmdEnv) target(d virt.Domain) string {
	gas, err := getGAS(context.Background(), e.ns, d.UUID)
	if err != nil {
		panic(err)
	}
	return gas.Name
}

func newCmd(ns, name, target string, action gav1.Action) *gav1.GuestAgentCommand {
	return &gav1.GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       gav1.GuestAgentCommandSpec{Target: target, Action: action},
	}
}

// run creates cmd and waits for a terminal phase.
func run(t testing.TB, cmd *gav1.GuestAgentCommand) *gav1.GuestAgentCommand {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	return waitTerminal(t, cmd)
}

func waitTerminal(t testing.TB, cmd *gav1.GuestAgentCommand) *gav1.GuestAgentCommand {
	t.Helper()
	got := &gav1.GuestAgentCommand{}
	NewWithT(t).Eventually(func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(cmd), got); err != nil {
			return err
		}
		if !got.Status.Phase.IsTerminal() {
			return fmt.Errorf("phase %q", got.Status.Phase)
		}
		return nil
	}).WithTimeout(30 * time.Second).Should(Succeed())
	return got
}

func expect(t testing.TB, got *gav1.GuestAgentCommand, phase gav1.CommandPhase, reason string, agents ...gav1.AgentType) {
	t.Helper()
	if got.Status.Phase != phase || got.Status.Reason != reason {
		t.Fatalf("%s: phase %s reason %s (%s), want %s %s", got.Name, got.Status.Phase, got.Status.Reason, got.Status.Message, phase, reason)
	}
	if agents != nil && !slices.Equal(got.Status.Agents, agents) {
		t.Fatalf("%s: served by %v, want %v", got.Name, got.Status.Agents, agents)
	}
	if got.Status.NodeName != "node-a" && reason != gav1.ReasonInvalidSpec && reason != gav1.ReasonTargetNotFound {
		t.Fatalf("%s: nodeName %q", got.Name, got.Status.NodeName)
	}
}

// obey makes libvirt report the effect of a power action on d (shut off, or a reboot) and
// returns the reason the command then succeeds with.
func (e *cmdEnv) obey(action gav1.Action, d virt.Domain) string {
	if action == gav1.ActionReboot {
		e.n.watcher.Set(d, virt.LifecycleRebooted)
		return gav1.ReasonRebooted
	}
	d.State, d.StateReason = virt.StateShutOff, "Shutdown"
	e.n.watcher.Set(d, virt.LifecycleStopped)
	return gav1.ReasonShutOff
}

func received(g *ogafake.Guest, name string) int { return len(g.ReceivedNamed(name)) }

// TestEveryActionThroughEveryAgent sends each action through each agent that can serve it and
// checks what reached the guest.
func TestEveryActionThroughEveryAgent(t *testing.T) {
	e := newCmdEnv(t, "tenant-a", "55555555", ogafake.Config{HookEvents: []string{"before_migration"}})
	qgaT, ogaT, bothT := e.target(e.qOnly), e.target(e.oOnly), e.target(e.bo)
	q := e.n.qga

	cases := []struct {
		name    string
		target  string
		action  gav1.Action
		agent   gav1.AgentSelector
		mutate  func(*gav1.GuestAgentCommand)
		served  []gav1.AgentType
		qgaCall string
		ogaName string
		guest   *ogafake.Guest
	}{
		{"hook", ogaT, gav1.ActionHook, gav1.AgentAuto, func(c *gav1.GuestAgentCommand) {
			c.Spec.Hook = &gav1.HookParams{Name: gav1.HookBeforeMigration}
		}, []gav1.AgentType{gav1.AgentOvirt}, "", "lifecycle-event", e.gO},
		{"lock", bothT, gav1.ActionLockScreen, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentOvirt}, "", "lock-screen", e.gB},
		{"logoff", ogaT, gav1.ActionLogOff, gav1.AgentSelectOvirt, nil, []gav1.AgentType{gav1.AgentOvirt}, "", "log-off", e.gO},
		{"freeze", bothT, gav1.ActionFreezeFilesystems, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentQemu}, "freeze " + e.bo.UUID, "", nil},
		{"thaw", bothT, gav1.ActionThawFilesystems, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentQemu}, "thaw " + e.bo.UUID, "", nil},
		{"settime", qgaT, gav1.ActionSetTime, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentQemu}, "settime " + e.qOnly.UUID, "", nil},
		{"setvcpus-qga", qgaT, gav1.ActionSetVCPUs, gav1.AgentAuto, func(c *gav1.GuestAgentCommand) {
			c.Spec.SetVCPUs = &gav1.SetVCPUsParams{Count: 2}
		}, []gav1.AgentType{gav1.AgentQemu}, "setvcpus 2 " + e.qOnly.UUID, "", nil},
		{"setvcpus-oga", ogaT, gav1.ActionSetVCPUs, gav1.AgentAuto, func(c *gav1.GuestAgentCommand) {
			c.Spec.SetVCPUs = &gav1.SetVCPUsParams{Count: 3}
		}, []gav1.AgentType{gav1.AgentOvirt}, "", "set-number-of-cpus", e.gO},
		{"ping-qga", qgaT, gav1.ActionPing, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentQemu}, "ping " + e.qOnly.UUID, "", nil},
		{"ping-oga", ogaT, gav1.ActionPing, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentOvirt}, "", "", nil},
		{"ping-both", bothT, gav1.ActionPing, gav1.AgentBoth, nil, []gav1.AgentType{gav1.AgentQemu, gav1.AgentOvirt}, "ping " + e.bo.UUID, "", nil},
		// Power actions last: each shutdown is the last use of its domain (the guest obeys and
		// libvirt reports it shut off); a reboot keeps the domain running.
		{"reboot-both-auto", bothT, gav1.ActionReboot, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentQemu}, "reboot " + e.bo.UUID, "", nil},
		{"reboot-oga", bothT, gav1.ActionReboot, gav1.AgentSelectOvirt, nil, []gav1.AgentType{gav1.AgentOvirt}, "", "shutdown", e.gB},
		{"halt-qga", bothT, gav1.ActionShutdown, gav1.AgentSelectQemu, func(c *gav1.GuestAgentCommand) {
			c.Spec.Shutdown = &gav1.ShutdownParams{Mode: gav1.ShutdownHalt}
		}, []gav1.AgentType{gav1.AgentQemu}, "halt " + e.bo.UUID, "", nil},
		{"shutdown-qga", qgaT, gav1.ActionShutdown, gav1.AgentAuto, nil, []gav1.AgentType{gav1.AgentQemu}, "shutdown " + e.qOnly.UUID, "", nil},
		{"shutdown-oga", ogaT, gav1.ActionShutdown, gav1.AgentSelectOvirt, func(c *gav1.GuestAgentCommand) {
			c.Spec.Shutdown = &gav1.ShutdownParams{DelaySeconds: ptr.To[int32](90), Message: "bye"}
		}, []gav1.AgentType{gav1.AgentOvirt}, "", "shutdown", e.gO},
	}
	domains := map[string]virt.Domain{qgaT: e.qOnly, ogaT: e.oOnly, bothT: e.bo}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := 0
			if tc.guest != nil {
				before = received(tc.guest, tc.ogaName)
			}
			cmd := newCmd(e.ns, tc.name, tc.target, tc.action)
			cmd.Spec.Agent = tc.agent
			if tc.mutate != nil {
				tc.mutate(cmd)
			}
			if err := env.Client.Create(context.Background(), cmd); err != nil {
				t.Fatal(err)
			}
			reason := gav1.ReasonCompleted
			if gav1.IsPowerAction(tc.action) {
				// A power action succeeds only once libvirt reports its effect: the guest obeys
				// when the request reached it.
				NewWithT(t).Eventually(func() bool {
					if tc.qgaCall != "" {
						return slices.Contains(q.Calls(), tc.qgaCall)
					}
					return received(tc.guest, tc.ogaName) == before+1
				}).WithTimeout(10 * time.Second).Should(BeTrue())
				reason = e.obey(tc.action, domains[tc.target])
			}
			got := waitTerminal(t, cmd)
			expect(t, got, gav1.PhaseSucceeded, reason, tc.served...)
			if tc.qgaCall != "" && !slices.Contains(q.Calls(), tc.qgaCall) {
				t.Fatalf("QGA did not receive %q: %v", tc.qgaCall, q.Calls())
			}
			if tc.guest != nil {
				NewWithT(t).Eventually(func() error {
					if n := received(tc.guest, tc.ogaName); n != before+1 {
						return fmt.Errorf("guest received %d %s, want %d", n, tc.ogaName, before+1)
					}
					return nil
				}).WithTimeout(5 * time.Second).Should(Succeed())
			}
		})
	}
	// The OGA shutdown carried the delay, message and the string form of reboot.
	sd := e.gO.ReceivedNamed("shutdown")
	if len(sd) == 0 || sd[0].Args["message"] != "bye" || sd[0].Args["reboot"] != "False" || fmt.Sprint(sd[0].Args["timeout"]) != "90" {
		t.Errorf("OGA shutdown frame: %+v", sd)
	}
	if rb := e.gB.ReceivedNamed("shutdown"); len(rb) == 0 || rb[len(rb)-1].Args["reboot"] != "True" {
		t.Errorf("OGA reboot frame: %+v", rb)
	}
}

// TestRoutingRefusalsAndFallback: impossible or unavailable routes fail with clear reasons;
// the ACPI fallback is explicit and reported.
func TestRoutingRefusalsAndFallback(t *testing.T) {
	e := newCmdEnv(t, "tenant-b", "66666666", ogafake.Config{})
	qgaT, ogaT := e.target(e.qOnly), e.target(e.oOnly)

	// Hook through QGA can never work: rejected before scheduling.
	c := newCmd(e.ns, "hook-via-qga", ogaT, gav1.ActionHook)
	c.Spec.Hook = &gav1.HookParams{Name: gav1.HookAfterMigration}
	c.Spec.Agent = gav1.AgentSelectQemu
	got := run(t, c)
	if got.Status.Phase != gav1.PhaseFailed || got.Status.Reason != gav1.ReasonInvalidSpec {
		t.Fatalf("hook via QGA: %s %s", got.Status.Phase, got.Status.Reason)
	}

	// An explicit agent the domain does not have.
	c = newCmd(e.ns, "oga-on-qga-only", qgaT, gav1.ActionLockScreen)
	got = run(t, c)
	expect(t, got, gav1.PhaseFailed, gav1.ReasonAgentUnavailable)
	if !strings.Contains(got.Status.Message, "no oVirt guest agent channel") {
		t.Errorf("message does not say why: %q", got.Status.Message)
	}

	// QGA channel down: Auto falls through to nothing on a QGA-only domain → fails (no fallback).
	st := qgaUp("7.2.22")
	st.Channel, st.Responsive = "Disconnected", false
	e.n.qga.Set(e.qOnly.UUID, debianQGA(), st)
	down := e.qOnly
	down.QGAChannel = "Disconnected"
	e.n.watcher.Set(down, virt.LifecycleNone)
	NewWithT(t).Eventually(func() error {
		gas, _ := getGAS(context.Background(), e.ns, e.qOnly.UUID)
		if gas == nil || cond(gas, gav1.ConditionQemuAgentConnected) != metav1.ConditionFalse {
			return fmt.Errorf("QGA not down yet")
		}
		return nil
	}).WithTimeout(10 * time.Second).Should(Succeed())
	c = newCmd(e.ns, "shutdown-no-agent", qgaT, gav1.ActionShutdown)
	c.Spec.Agent = gav1.AgentSelectQemu
	got = run(t, c)
	expect(t, got, gav1.PhaseFailed, gav1.ReasonNotShutOff)
	if len(got.Status.PowerSteps) != 1 || got.Status.PowerSteps[0].Result != gav1.StepSkipped ||
		!strings.Contains(got.Status.PowerSteps[0].Message, "not connected") {
		t.Errorf("the unusable agent's step is not recorded as skipped: %+v", got.Status.PowerSteps)
	}

	// The default policy: both agents skipped, then the ACPI button; success once libvirt shows
	// the domain shut off, attributed to ACPI.
	c = newCmd(e.ns, "shutdown-acpi", qgaT, gav1.ActionShutdown)
	if err := env.Client.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(acpi.Calls).WithTimeout(10 * time.Second).Should(ContainElement("acpi-shutdown " + e.qOnly.UUID))
	e.obey(gav1.ActionShutdown, e.qOnly)
	got = waitTerminal(t, c)
	expect(t, got, gav1.PhaseSucceeded, gav1.ReasonShutOff, gav1.AgentACPI)
	if !strings.HasPrefix(got.Status.Message, "domain shut off after ACPI") || len(got.Status.PowerSteps) != 3 {
		t.Fatalf("ACPI step not reported: %q %+v", got.Status.Message, got.Status.PowerSteps)
	}

	// Cross-namespace: a command in tenant-a naming a tenant-b status never reaches it.
	c = newCmd("tenant-a", "cross-ns", qgaT, gav1.ActionPing)
	c.Spec.DeadlineSeconds = ptr.To[int32](3)
	got = run(t, c)
	if got.Status.Phase != gav1.PhaseFailed || got.Status.NodeName != "" {
		t.Fatalf("cross-namespace command: phase %s node %q", got.Status.Phase, got.Status.NodeName)
	}
	if slices.Contains(e.n.qga.Calls(), "ping "+e.qOnly.UUID) {
		t.Fatal("a command from another namespace reached the guest")
	}
}

// TestHookCompletionTimeout: a guest without the hook directory never answers; the command
// fails with AgentTimeout, never success.
func TestHookCompletionTimeout(t *testing.T) {
	e := newCmdEnv(t, "tenant-a", "77777777", ogafake.Config{}) // no hooks.d at all
	c := newCmd(e.ns, "hook-timeout", e.target(e.oOnly), gav1.ActionHook)
	c.Spec.Hook = &gav1.HookParams{Name: gav1.HookBeforeHibernation, TimeoutSeconds: ptr.To[int32](2)}
	got := run(t, c)
	expect(t, got, gav1.PhaseFailed, gav1.ReasonAgentTimeout, nil...)
	if received(e.gO, "lifecycle-event") != 1 {
		t.Fatalf("hook sent %d times", received(e.gO, "lifecycle-event"))
	}
}

// TestAtMostOnce: GitOps re-creation is not executed again, and an agentd restart in the middle
// of a command fails it instead of re-sending; the fake guest's log proves one delivery each.
func TestAtMostOnce(t *testing.T) {
	release := make(chan struct{})
	var inHook atomic.Int32
	cfg := ogafake.Config{RunHooks: func(ctx context.Context, event string) bool {
		if event == "after_hibernation" {
			inHook.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return true
	}}
	e := newCmdEnv(t, "tenant-b", "88888888", cfg)
	ctx := context.Background()
	target := e.target(e.oOnly)

	// 1. Executed once, deleted (TTL/prune), re-created by GitOps: AlreadyExecuted, not re-sent.
	lock := run(t, newCmd(e.ns, "gitops-lock", target, gav1.ActionLockScreen))
	expect(t, lock, gav1.PhaseSucceeded, gav1.ReasonCompleted)
	NewWithT(t).Eventually(func() error {
		gas, _ := getGAS(ctx, e.ns, e.oOnly.UUID)
		if gas == nil || !gav1.HasExecuted(gas, gav1.CommandKey(lock)) {
			return fmt.Errorf("executed history not recorded yet")
		}
		return nil
	}).WithTimeout(10 * time.Second).Should(Succeed())
	if err := env.Client.Delete(ctx, lock); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		return client.IgnoreNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(lock), &gav1.GuestAgentCommand{})) //nolint
	}).WithTimeout(10 * time.Second).Should(Succeed())
	again := run(t, newCmd(e.ns, "gitops-lock", target, gav1.ActionLockScreen))
	if again.Status.Phase != gav1.PhaseSucceeded || again.Status.Reason != gav1.ReasonAlreadyExecuted {
		t.Fatalf("re-created command: %s %s", again.Status.Phase, again.Status.Reason)
	}
	if n := received(e.gO, "lock-screen"); n != 1 {
		t.Fatalf("guest locked %d times, want 1", n)
	}

	// 2. agentd restarts while a hook runs in the guest: failed with AgentRestarted, not re-sent.
	hook := newCmd(e.ns, "hook-restart", target, gav1.ActionHook)
	hook.Spec.Hook = &gav1.HookParams{Name: gav1.HookAfterHibernation, TimeoutSeconds: ptr.To[int32](60)}
	if err := env.Client.Create(ctx, hook); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		if inHook.Load() != 1 {
			return fmt.Errorf("hook not running in the guest yet")
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
	e.n.stop()
	close(release)
	q2 := e.n.qga
	n2 := startNode(t, "node-a", q2, e.qOnly, e.oOnly, e.bo)
	_ = n2
	got := waitTerminal(t, hook)
	expect(t, got, gav1.PhaseFailed, gav1.ReasonAgentRestarted)
	NewWithT(t).Consistently(func() int { return received(e.gO, "lifecycle-event") }).WithTimeout(2*time.Second).
		Should(Equal(1), "hook deliveries across the restart")
}

// TestCommandsToOneDomainAreSerialised: two hooks to one domain never run in the guest at once.
func TestCommandsToOneDomainAreSerialised(t *testing.T) {
	var cur, peak atomic.Int32
	cfg := ogafake.Config{RunHooks: func(ctx context.Context, event string) bool {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
		cur.Add(-1)
		return true
	}}
	e := newCmdEnv(t, "tenant-a", "99999999", cfg)
	target := e.target(e.oOnly)
	var wg sync.WaitGroup
	cmds := make([]*gav1.GuestAgentCommand, 4)
	for i := range cmds {
		cmds[i] = newCmd(e.ns, fmt.Sprintf("serial-%d", i), target, gav1.ActionHook)
		cmds[i].Spec.Hook = &gav1.HookParams{Name: gav1.HookAfterMigration, TimeoutSeconds: ptr.To[int32](20)}
		if err := env.Client.Create(context.Background(), cmds[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cmds {
		wg.Add(1)
		go func() { defer wg.Done() }()
		expect(t, waitTerminal(t, c), gav1.PhaseSucceeded, gav1.ReasonCompleted)
	}
	wg.Wait()
	if peak.Load() != 1 {
		t.Fatalf("%d hooks ran in the guest at once; requests to one domain must be serialised", peak.Load())
	}
}
