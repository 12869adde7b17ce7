package execute

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// powerRig is a rig whose executor waits on a fake clock.
type powerRig struct {
	*rig
	clock *testclock.FakeClock
}

func newPowerRig(t *testing.T, qgaState, ogaState agentState) *powerRig {
	r := &powerRig{rig: newRig(t, qgaState, ogaState), clock: testclock.NewFakeClock(created.Add(time.Second))}
	r.e.Now, r.e.After = r.clock.Now, r.clock.After
	return r
}

// start reconciles cmd in the background; the returned function waits for the end and returns
// the command as stored.
func (r *powerRig) start(t *testing.T, cmd *gav1.GuestAgentCommand) func() *gav1.GuestAgentCommand {
	t.Helper()
	key := client.ObjectKeyFromObject(cmd)
	errc := make(chan error, 1)
	go func() {
		_, err := r.e.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
		errc <- err
	}()
	return func() *gav1.GuestAgentCommand {
		t.Helper()
		g := NewWithT(t)
		var err error
		g.Eventually(errc).Should(Receive(&err))
		g.Expect(err).NotTo(HaveOccurred())
		out := &gav1.GuestAgentCommand{}
		g.Expect(r.c.Get(context.Background(), key, out)).To(Succeed())
		return out
	}
}

// waitingFor steps the fake clock by d once the executor waits on it.
func (r *powerRig) elapse(t *testing.T, d time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(r.clock.HasWaiters).Should(BeTrue())
	r.clock.Step(d)
}

// shutOff makes libvirt report the domain stopped; reboot reports a REBOOT event.
func (r *powerRig) shutOff() {
	d := r.domain
	d.State, d.StateReason = virt.StateShutOff, "Shutdown"
	r.virt.Set(d, virt.LifecycleStopped)
}

func (r *powerRig) rebooted() { r.virt.Set(r.domain, virt.LifecycleRebooted) }

func (r *powerRig) agentCalls() []string {
	var out []string
	for _, c := range r.qga.Calls() {
		out = append(out, "qga "+strings.Fields(c)[0])
	}
	for _, c := range r.oga.Calls() {
		out = append(out, "oga "+strings.Fields(c)[0])
	}
	return out
}

func stepsOf(st gav1.GuestAgentCommandStatus) []string {
	var out []string
	for _, s := range st.PowerSteps {
		out = append(out, string(s.Method)+" "+string(s.Result))
	}
	return out
}

func powerSpec(action gav1.Action, methods ...gav1.PowerMethod) gav1.GuestAgentCommandSpec {
	spec := gav1.GuestAgentCommandSpec{Action: action, Agent: gav1.AgentAuto, Fallback: gav1.FallbackNone}
	if len(methods) > 0 {
		spec.Power = &gav1.PowerPolicy{Methods: methods}
	}
	return spec
}

// The guest goes down after the QEMU guest agent's shutdown: Succeeded, ShutOff, via QGA; nothing
// else is tried.
func TestPowerShutOffAfterQGA(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, up)
	done := r.start(t, r.command(t, "off", powerSpec(gav1.ActionShutdown)))
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga shutdown"}))
	r.shutOff()
	got := done()
	st := got.Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded))
	g.Expect(st.Reason).To(Equal(gav1.ReasonShutOff))
	g.Expect(st.Message).To(HavePrefix("domain shut off after QemuGuestAgent"))
	g.Expect(st.Agents).To(Equal([]gav1.AgentType{gav1.AgentQemu}))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent Accepted"}))
	g.Expect(r.agentCalls()).To(Equal([]string{"qga shutdown"}))
	g.Expect(r.power.Pressed()).To(BeEmpty())
	g.Expect(r.history.keys()).To(Equal([]string{gav1.CommandKey(got)}))
}

// Accepting is not succeeding: a guest that ignores QGA gets OGA after the grace period, then
// ACPI; the command succeeds when the domain shuts off after ACPI, and every step is recorded.
func TestPowerEscalates(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, up)
	spec := powerSpec(gav1.ActionShutdown)
	spec.Power = &gav1.PowerPolicy{GracePeriodSeconds: ptr.To[int32](30)}
	done := r.start(t, r.command(t, "off", spec))
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga shutdown"}))
	r.elapse(t, 29*time.Second)
	g.Consistently(r.agentCalls).Should(Equal([]string{"qga shutdown"}), "OGA before the grace period ended")
	r.clock.Step(time.Second)
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga shutdown", "oga shutdown"}))
	g.Expect(r.power.Pressed()).To(BeEmpty())
	r.elapse(t, 30*time.Second)
	g.Eventually(r.power.Pressed).Should(Equal([]string{"shutdown"}))
	r.shutOff()
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded))
	g.Expect(st.Reason).To(Equal(gav1.ReasonShutOff))
	g.Expect(st.Message).To(HavePrefix("domain shut off after ACPI"))
	g.Expect(st.Agents).To(Equal([]gav1.AgentType{gav1.AgentACPI}))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent TimedOut", "OvirtGuestAgent TimedOut", "ACPI Accepted"}))
	g.Expect(st.PowerSteps[1].Time.Time).To(BeTemporally("==", created.Add(31*time.Second)))
	g.Expect(st.PowerSteps[0].Message).To(ContainSubstring("did not shut off within 30s"))
}

// Destroy is taken only when listed: the default policy ends NotShutOff after ACPI; a policy
// listing Destroy destroys the domain.
func TestPowerDestroyOnlyWhenListed(t *testing.T) {
	t.Run("default policy", func(t *testing.T) {
		g := NewWithT(t)
		r := newPowerRig(t, up, up)
		done := r.start(t, r.command(t, "off", powerSpec(gav1.ActionShutdown)))
		for range 3 {
			r.elapse(t, time.Minute)
		}
		st := done().Status
		g.Expect(st.Phase).To(Equal(gav1.PhaseFailed))
		g.Expect(st.Reason).To(Equal(gav1.ReasonNotShutOff))
		g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent TimedOut", "OvirtGuestAgent TimedOut", "ACPI TimedOut"}))
		g.Expect(r.power.Pressed()).To(Equal([]string{"shutdown"}), "destroyed without Destroy listed")
		g.Expect(st.Message).To(ContainSubstring("ACPI timedout"))
	})
	t.Run("Destroy listed", func(t *testing.T) {
		g := NewWithT(t)
		r := newPowerRig(t, up, absent)
		r.power.onPress = func(what string) {
			if what == "destroy" {
				r.shutOff()
			}
		}
		done := r.start(t, r.command(t, "off", powerSpec(gav1.ActionShutdown, gav1.PowerQemu, gav1.PowerDestroy)))
		r.elapse(t, time.Minute)
		st := done().Status
		g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded))
		g.Expect(st.Message).To(HavePrefix("domain shut off after Destroy"))
		g.Expect(st.Agents).To(BeEmpty())
		g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent TimedOut", "Destroy Accepted"}))
		g.Expect(r.power.Pressed()).To(Equal([]string{"destroy"}))
	})
}

// An agent that is not connected is skipped (nothing sent, reason recorded); the next method runs
// at once.
func TestPowerSkipsUnusableAgent(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, down, up)
	done := r.start(t, r.command(t, "off", powerSpec(gav1.ActionShutdown)))
	g.Eventually(r.agentCalls).Should(Equal([]string{"oga shutdown"}))
	r.shutOff()
	st := done().Status
	g.Expect(st.Reason).To(Equal(gav1.ReasonShutOff))
	g.Expect(st.Message).To(HavePrefix("domain shut off after OvirtGuestAgent"))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent Skipped", "OvirtGuestAgent Accepted"}))
	g.Expect(st.PowerSteps[0].Message).To(ContainSubstring("not connected"))
}

// A refusing agent is recorded as Refused and the next method is tried without waiting.
func TestPowerRefusedStep(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, failing, absent)
	done := r.start(t, r.command(t, "off", powerSpec(gav1.ActionShutdown, gav1.PowerQemu, gav1.PowerACPI)))
	g.Eventually(r.power.Pressed).Should(Equal([]string{"shutdown"}))
	r.shutOff()
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent Refused", "ACPI Accepted"}))
	g.Expect(st.PowerSteps[0].Message).To(ContainSubstring("guest refused"))
}

// A reboot succeeds on libvirt's REBOOT event, not on the agent's acceptance; a Destroy step of a
// Reboot resets the domain.
func TestPowerRebootObserved(t *testing.T) {
	t.Run("via QGA", func(t *testing.T) {
		g := NewWithT(t)
		r := newPowerRig(t, up, absent)
		done := r.start(t, r.command(t, "rb", powerSpec(gav1.ActionReboot)))
		g.Eventually(r.agentCalls).Should(Equal([]string{"qga reboot"}))
		g.Consistently(func() gav1.CommandPhase {
			c := &gav1.GuestAgentCommand{}
			_ = r.c.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: "rb"}, c)
			return c.Status.Phase
		}).Should(Equal(gav1.PhaseRunning), "succeeded before the reboot was seen")
		r.rebooted()
		st := done().Status
		g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded))
		g.Expect(st.Reason).To(Equal(gav1.ReasonRebooted))
		g.Expect(st.Message).To(HavePrefix("domain rebooted after QemuGuestAgent"))
	})
	t.Run("reset", func(t *testing.T) {
		g := NewWithT(t)
		r := newPowerRig(t, absent, absent)
		r.power.onPress = func(what string) {
			if what == "reset" {
				r.rebooted()
			}
		}
		done := r.start(t, r.command(t, "rb", powerSpec(gav1.ActionReboot, gav1.PowerQemu, gav1.PowerDestroy)))
		st := done().Status
		g.Expect(st.Reason).To(Equal(gav1.ReasonRebooted))
		g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent Skipped", "Destroy Accepted"}))
		g.Expect(r.power.Pressed()).To(Equal([]string{"reset"}))
	})
	t.Run("shut off instead", func(t *testing.T) {
		g := NewWithT(t)
		r := newPowerRig(t, up, absent)
		done := r.start(t, r.command(t, "rb", powerSpec(gav1.ActionReboot)))
		g.Eventually(r.agentCalls).Should(Equal([]string{"qga reboot"}))
		r.shutOff()
		st := done().Status
		g.Expect(st.Phase).To(Equal(gav1.PhaseFailed))
		g.Expect(st.Reason).To(Equal(gav1.ReasonNotRebooted))
		g.Expect(r.power.Pressed()).To(BeEmpty())
	})
}

// A deadline shorter than the waits (the controller refuses such a spec; agentd still bounds
// every wait by the deadline) ends the policy with DeadlineExceeded and the steps taken.
func TestPowerDeadline(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, up)
	spec := powerSpec(gav1.ActionShutdown)
	spec.DeadlineSeconds = ptr.To[int32](90)
	done := r.start(t, r.command(t, "off", spec))
	r.elapse(t, time.Minute)
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga shutdown", "oga shutdown"}))
	r.elapse(t, 29*time.Second) // 1 s after creation + 60 s + 29 s: the deadline
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseFailed))
	g.Expect(st.Reason).To(Equal(gav1.ReasonDeadlineExceeded))
	g.Expect(st.Message).To(ContainSubstring("QemuGuestAgent timedout"))
	g.Expect(st.Message).To(ContainSubstring("OvirtGuestAgent timedout"))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent TimedOut", "OvirtGuestAgent TimedOut"}))
	g.Expect(r.power.Pressed()).To(BeEmpty(), "ACPI pressed after the deadline")
}

// A shutdown of a domain that is already shut off succeeds without sending anything.
func TestPowerAlreadyOff(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, absent)
	r.shutOff()
	g.Eventually(func() bool {
		w, _ := r.e.Service.WatchPower(testUUID)
		defer w.Close()
		return w.State == virt.StateShutOff
	}).Should(BeTrue())
	st := r.start(t, r.command(t, "off", powerSpec(gav1.ActionShutdown)))().Status
	g.Expect(st.Reason).To(Equal(gav1.ReasonShutOff))
	g.Expect(st.Message).To(ContainSubstring("nothing was sent"))
	g.Expect(r.agentCalls()).To(BeEmpty())
	g.Expect(r.history.keys()).To(BeEmpty())
}

// After an agentd restart mid-policy the policy is not continued: the successor's sweep fails the
// command with AgentRestarted, naming the recorded steps, and sends nothing.
func TestPowerRestartMidPolicy(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, up)
	cmd := r.command(t, "off", powerSpec(gav1.ActionShutdown))
	cmd.Status.Phase, cmd.Status.ClaimedBy = gav1.PhaseRunning, "agentd-0"
	cmd.Status.PowerSteps = []gav1.PowerStep{{Method: gav1.PowerQemu, Result: gav1.StepTimedOut, Time: metav1.NewTime(created),
		Message: "accepted, but the domain did not shut off within 1m0s"}, {Method: gav1.PowerOvirt, Result: gav1.StepAccepted,
		Time: metav1.NewTime(created.Add(time.Minute)), Message: "accepted; waiting up to 1m0s for the shut-off"}}
	g.Expect(r.c.Status().Update(context.Background(), cmd)).To(Succeed())
	g.Expect(r.e.sweep(context.Background())).To(Succeed())
	got := &gav1.GuestAgentCommand{}
	g.Expect(r.c.Get(context.Background(), client.ObjectKeyFromObject(cmd), got)).To(Succeed())
	st := got.Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseFailed))
	g.Expect(st.Reason).To(Equal(gav1.ReasonAgentRestarted))
	g.Expect(st.Message).To(ContainSubstring("not continued"))
	g.Expect(st.Message).To(ContainSubstring("OvirtGuestAgent accepted"))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent TimedOut", "OvirtGuestAgent Accepted"}))
	// A later event for it does not run it either.
	r.reconcile(t, cmd)
	g.Expect(r.agentCalls()).To(BeEmpty())
	g.Expect(r.power.Pressed()).To(BeEmpty())
	g.Expect(slices.Contains(r.history.keys(), gav1.CommandKey(got))).To(BeFalse())
}

// A step whose send does not answer (libvirt's shutdown through the QEMU guest agent waits up to
// 60 s for the guest to go down) gives up after the grace period: TimedOut, and the next method,
// another agent, is sent while the first call still hangs.
func TestPowerStepWithoutAnswer(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, up)
	hold := make(chan struct{})
	defer close(hold)
	r.qga.Hold = hold
	spec := powerSpec(gav1.ActionShutdown)
	spec.Power = &gav1.PowerPolicy{GracePeriodSeconds: ptr.To[int32](1)}
	done := r.start(t, r.command(t, "hang", spec))
	g.Eventually(r.agentCalls).WithTimeout(10 * time.Second).Should(Equal([]string{"qga shutdown", "oga shutdown"}))
	r.shutOff()
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent TimedOut", "OvirtGuestAgent Accepted"}))
	g.Expect(st.PowerSteps[0].Message).To(ContainSubstring("no answer within 1s"))
	g.Expect(st.Message).To(HavePrefix("domain shut off after OvirtGuestAgent"))
}
