package execute

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

const (
	testNode = "node-a"
	testNS   = "tenant"
	testUUID = "0e7e0000-0000-4000-8000-000000000002"
)

var created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type history struct {
	mu  sync.Mutex
	got []gav1.ExecutedCommand
}

func (h *history) RecordExecuted(uuid string, ec gav1.ExecutedCommand) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if uuid == testUUID {
		h.got = append(h.got, ec)
	}
}

func (h *history) keys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ec := range h.got {
		out = append(out, ec.Key)
	}
	return out
}

type powerButton struct {
	mu      sync.Mutex
	pressed []string
	onPress func(what string)
}

func (p *powerButton) press(what string) error {
	p.mu.Lock()
	p.pressed = append(p.pressed, what)
	f := p.onPress
	p.mu.Unlock()
	if f != nil {
		f(what)
	}
	return nil
}

func (p *powerButton) Pressed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.pressed...)
}

func (p *powerButton) Destroy(_ context.Context, uuid string) error { return p.press("destroy") }
func (p *powerButton) Reset(_ context.Context, uuid string) error   { return p.press("reset") }

func (p *powerButton) ACPIShutdown(_ context.Context, uuid string) error { return p.press("shutdown") }
func (p *powerButton) ACPIReboot(_ context.Context, uuid string) error   { return p.press("reboot") }

type agentState = servicefake.AgentState

const (
	absent  = servicefake.Absent
	down    = servicefake.Down
	up      = servicefake.Up
	failing = servicefake.Failing
)

// rig is an executor over a fake API client and a running GuestAgentService whose agents are
// in-memory fakes.
type rig struct {
	e       *Executor
	c       client.Client
	qga     *servicefake.QGA
	oga     *servicefake.OGA
	power   *powerButton
	save    *hostSave
	history *history
	virt    *virt.Fake
	domain  virt.Domain
}

func newRig(t *testing.T, qgaState, ogaState agentState, executed ...gav1.ExecutedCommand) *rig {
	t.Helper()
	g := NewWithT(t)
	scheme := runtime.NewScheme()
	g.Expect(gav1.AddToScheme(scheme)).To(Succeed())
	target := &gav1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Name: "vm1", Namespace: testNS,
		Labels: map[string]string{gav1.LabelNode: testNode, gav1.LabelDomainUUID: testUUID}},
		Spec: gav1.GuestAgentStatusSpec{DomainUUID: testUUID, NodeName: testNode}}
	target.Status.ExecutedCommands = executed
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(target).
		WithIndex(&gav1.GuestAgentCommand{}, FieldNodeName, func(o client.Object) []string {
			return []string{o.(*gav1.GuestAgentCommand).Status.NodeName}
		}).
		WithStatusSubresource(&gav1.GuestAgentCommand{}, &gav1.GuestAgentStatus{}).Build()

	r := &rig{c: c, qga: servicefake.NewQGA(), oga: servicefake.NewOGA(), power: &powerButton{}, save: &hostSave{}, history: &history{}}
	d := servicefake.Domain(testUUID, "vm1", virt.StateRunning, qgaState, ogaState)
	r.virt, r.domain = virt.NewFake(d), d
	svc := service.New(service.Options{Log: testr.New(t), Watcher: r.virt, QGA: r.qga, OGA: r.oga, PowerButton: r.power, Save: r.save})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	g.Eventually(func() bool { _, ok := svc.View(testUUID); return ok }).Should(BeTrue())
	if ogaState != absent {
		g.Eventually(func() bool { return r.oga.Served(testUUID) }).Should(BeTrue())
		r.oga.Set(testUUID, servicefake.OGAState(ogaState), nil)
		g.Eventually(func() bool { v, _ := svc.View(testUUID); return v.OGA.Responsive == (ogaState >= up) }).Should(BeTrue())
	}
	if qgaState == failing {
		r.qga.FailWith = errors.New("guest refused")
	}
	if ogaState == failing {
		r.oga.FailWith = errors.New("guest refused")
	}
	r.e = &Executor{Client: c, APIReader: c, NodeName: testNode, InstanceID: "agentd-1", Service: svc, History: r.history,
		Now: func() time.Time { return created.Add(time.Second) }}
	r.e.setDefaults()
	close(r.e.swept)
	return r
}

// command creates a Scheduled command of this node for the target.
func (r *rig) command(t *testing.T, name string, spec gav1.GuestAgentCommandSpec) *gav1.GuestAgentCommand {
	t.Helper()
	spec.Target = "vm1"
	cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID(name + "-uid"),
		Labels: map[string]string{gav1.LabelNode: testNode}, CreationTimestamp: metav1.NewTime(created)}, Spec: spec}
	NewWithT(t).Expect(r.c.Create(context.Background(), cmd)).To(Succeed())
	cmd.Status = gav1.GuestAgentCommandStatus{Phase: gav1.PhaseScheduled, NodeName: testNode}
	NewWithT(t).Expect(r.c.Status().Update(context.Background(), cmd)).To(Succeed())
	return cmd
}

func (r *rig) reconcile(t *testing.T, cmd *gav1.GuestAgentCommand) (ctrl.Result, *gav1.GuestAgentCommand) {
	t.Helper()
	key := client.ObjectKeyFromObject(cmd)
	res, err := r.e.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	out := &gav1.GuestAgentCommand{}
	NewWithT(t).Expect(r.c.Get(context.Background(), key, out)).To(Succeed())
	return res, out
}

func TestReconcileOutcomes(t *testing.T) {
	cases := []struct {
		name       string
		action     gav1.Action
		agent      gav1.AgentSelector
		fallback   gav1.Fallback
		qga, oga   agentState
		wantPhase  gav1.CommandPhase
		wantReason string
		wantAgents []gav1.AgentType
		wantCalls  int // requests that reached the guest agents
		wantACPI   []string
	}{
		{"set time, qga failing", gav1.ActionSetTime, gav1.AgentAuto, "", failing, up,
			gav1.PhaseFailed, gav1.ReasonAgentError, nil, 1, nil},
		{"lock screen to qga", gav1.ActionLockScreen, gav1.AgentSelectQemu, "", up, up,
			gav1.PhaseFailed, gav1.ReasonAgentUnsupported, nil, 0, nil},
		{"lock screen, no oVirt channel", gav1.ActionLockScreen, gav1.AgentAuto, "", up, absent,
			gav1.PhaseFailed, gav1.ReasonAgentUnavailable, nil, 0, nil},
		{"log off explicit ovirt", gav1.ActionLogOff, gav1.AgentSelectOvirt, "", absent, up,
			gav1.PhaseSucceeded, gav1.ReasonCompleted, []gav1.AgentType{gav1.AgentOvirt}, 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.qga, c.oga)
			cmd := r.command(t, "c1", gav1.GuestAgentCommandSpec{Action: c.action, Agent: c.agent, Fallback: c.fallback})
			_, got := r.reconcile(t, cmd)
			st := got.Status
			if st.Phase != c.wantPhase || st.Reason != c.wantReason || !slices.Equal(st.Agents, c.wantAgents) {
				t.Errorf("status %s/%s by %v (%s), want %s/%s by %v", st.Phase, st.Reason, st.Agents, st.Message,
					c.wantPhase, c.wantReason, c.wantAgents)
			}
			if st.ClaimedBy != "agentd-1" || st.DomainUUID != testUUID || st.CompletionTime == nil {
				t.Errorf("claimedBy %q, domainUUID %q, completion %v", st.ClaimedBy, st.DomainUUID, st.CompletionTime)
			}
			if n := len(r.qga.Calls()) + len(r.oga.Calls()); n != c.wantCalls {
				t.Errorf("%d requests reached the agents (%v %v), want %d", n, r.qga.Calls(), r.oga.Calls(), c.wantCalls)
			}
			if !slices.Equal(r.power.Pressed(), c.wantACPI) {
				t.Errorf("ACPI presses %v, want %v", r.power.Pressed(), c.wantACPI)
			}
			wantHistory := []string(nil)
			if c.wantPhase == gav1.PhaseSucceeded {
				wantHistory = []string{gav1.CommandKey(got)}
			}
			if h := r.history.keys(); !slices.Equal(h, wantHistory) {
				t.Errorf("history %v, want %v", h, wantHistory)
			}
			// A repeated event never executes the command again.
			calls := len(r.qga.Calls()) + len(r.oga.Calls())
			if _, again := r.reconcile(t, cmd); again.Status.Phase != c.wantPhase ||
				len(r.qga.Calls())+len(r.oga.Calls()) != calls {
				t.Errorf("a second reconcile changed the outcome or reached the guest again")
			}
		})
	}
}

// A command whose key is in the target's history finishes without touching the guest.
func TestReconcileAlreadyExecuted(t *testing.T) {
	spec := gav1.GuestAgentCommandSpec{Action: gav1.ActionPing, Agent: gav1.AgentAuto, Target: "vm1"}
	key := gav1.CommandKey(&gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "c1"}, Spec: spec})
	r := newRig(t, up, up, gav1.ExecutedCommand{Key: key, Action: gav1.ActionPing, Time: metav1.NewTime(created)})
	_, got := r.reconcile(t, r.command(t, "c1", spec))
	if got.Status.Phase != gav1.PhaseSucceeded || got.Status.Reason != gav1.ReasonAlreadyExecuted {
		t.Errorf("status %s/%s, want Succeeded/AlreadyExecuted", got.Status.Phase, got.Status.Reason)
	}
	if len(r.qga.Calls())+len(r.oga.Calls()) != 0 || len(r.history.keys()) != 0 {
		t.Errorf("the guest was reached (%v %v) or history recorded (%v)", r.qga.Calls(), r.oga.Calls(), r.history.keys())
	}
}

// A command past its deadline is left to the controller, and one whose target is missing waits.
func TestReconcileLeavesCommand(t *testing.T) {
	r := newRig(t, up, absent)
	late := r.command(t, "late", gav1.GuestAgentCommandSpec{Action: gav1.ActionPing, Agent: gav1.AgentAuto})
	r.e.Now = func() time.Time { return created.Add(time.Hour) }
	if _, got := r.reconcile(t, late); got.Status.Phase != gav1.PhaseScheduled {
		t.Errorf("a command past its deadline went %s", got.Status.Phase)
	}
	r.e.Now = func() time.Time { return created.Add(time.Second) }
	lost := r.command(t, "lost", gav1.GuestAgentCommandSpec{Action: gav1.ActionPing, Agent: gav1.AgentAuto})
	lost.Spec.Target = "nowhere"
	NewWithT(t).Expect(r.c.Update(context.Background(), lost)).To(Succeed())
	res, got := r.reconcile(t, lost)
	if got.Status.Phase != gav1.PhaseScheduled || res.RequeueAfter == 0 {
		t.Errorf("a command without its target went %s (requeue %v), want Scheduled and requeued", got.Status.Phase, res.RequeueAfter)
	}
	if len(r.qga.Calls()) != 0 {
		t.Errorf("the guest was reached: %v", r.qga.Calls())
	}
}

// countingReader counts the uncached reads of GuestAgentStatuses.
type countingReader struct {
	client.Reader
	mu    sync.Mutex
	reads int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*gav1.GuestAgentStatus); ok {
		c.mu.Lock()
		c.reads++
		c.mu.Unlock()
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A burst of commands of one target costs one read of the target; the read knows the commands
// executed since, so a re-created command is not executed again; after TargetReuse it is read again.
func TestTargetReadReused(t *testing.T) {
	r := newRig(t, up, absent)
	reader := &countingReader{Reader: r.c}
	r.e.APIReader = reader
	now := created.Add(time.Second)
	r.e.Now = func() time.Time { return now }
	spec := gav1.GuestAgentCommandSpec{Action: gav1.ActionPing, Agent: gav1.AgentAuto}
	for _, name := range []string{"c1", "c2", "c3"} {
		if _, got := r.reconcile(t, r.command(t, name, spec)); got.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("%s: %s %s", name, got.Status.Phase, got.Status.Reason)
		}
	}
	if reader.reads != 1 || len(r.qga.Calls()) != 3 {
		t.Fatalf("%d target reads and %d guest calls for 3 commands, want 1 and 3", reader.reads, len(r.qga.Calls()))
	}
	// c1 deleted and re-created with the same spec (the fake recorder never writes the history).
	old := &gav1.GuestAgentCommand{}
	NewWithT(t).Expect(r.c.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: "c1"}, old)).To(Succeed())
	NewWithT(t).Expect(r.c.Delete(context.Background(), old)).To(Succeed())
	again := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: "c1", Namespace: testNS, UID: "c1-uid-2",
		CreationTimestamp: metav1.NewTime(created)}, Spec: spec}
	again.Spec.Target = "vm1"
	NewWithT(t).Expect(r.c.Create(context.Background(), again)).To(Succeed())
	again.Status = gav1.GuestAgentCommandStatus{Phase: gav1.PhaseScheduled, NodeName: testNode}
	NewWithT(t).Expect(r.c.Status().Update(context.Background(), again)).To(Succeed())
	if _, got := r.reconcile(t, again); got.Status.Reason != gav1.ReasonAlreadyExecuted || len(r.qga.Calls()) != 3 {
		t.Fatalf("re-created c1: %s %s after %d guest calls, want AlreadyExecuted and 3", got.Status.Phase, got.Status.Reason, len(r.qga.Calls()))
	}
	now = now.Add(r.e.TargetReuse)
	r.reconcile(t, r.command(t, "c4", spec))
	if reader.reads != 2 {
		t.Errorf("%d target reads after TargetReuse, want 2", reader.reads)
	}
}
