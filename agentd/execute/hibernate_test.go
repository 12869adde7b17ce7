package execute

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/service/servicefake"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// hostSave is libvirt's managed save as the tests see it: a save records what the guest had been
// sent until then, and (unless err is set) stops the domain with STOPPED/SAVED through onSave.
type hostSave struct {
	mu     sync.Mutex
	saves  int
	before []string // the oVirt agent's calls at the time of the save
	image  bool
	err    error
	onSave func()
}

func (h *hostSave) ManagedSave(context.Context, string) error {
	h.mu.Lock()
	h.saves++
	err, f := h.err, h.onSave
	if err == nil {
		h.image = true
	}
	h.mu.Unlock()
	if err == nil && f != nil {
		f()
	}
	return err
}

func (h *hostSave) HasManagedSaveImage(context.Context, string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.image, nil
}

func (h *hostSave) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.saves
}

// hibernateRig is a power rig whose managed save stops the domain as libvirt does, and whose
// oVirt agent reports the session locked after a lock-screen.
func hibernateRig(t *testing.T, qgaState, ogaState agentState) *powerRig {
	r := newPowerRig(t, qgaState, ogaState)
	r.save.onSave = func() {
		r.save.mu.Lock()
		r.save.before = r.oga.Calls()
		r.save.mu.Unlock()
		d := r.domain
		d.State, d.StateReason = virt.StateShutOff, "Saved"
		r.virt.Set(d, virt.LifecycleSaved)
	}
	r.oga.OnLock = func(uuid string) {
		r.oga.Set(uuid, servicefake.OGAState(up), &guest.Info{Session: &guest.Session{State: guest.SessionLocked}})
	}
	return r
}

func hibernateSpec() gav1.GuestAgentCommandSpec {
	return gav1.GuestAgentCommandSpec{Action: gav1.ActionHibernate, Agent: gav1.AgentAuto, Fallback: gav1.FallbackNone}
}

func hibernateStepsOf(st gav1.GuestAgentCommandStatus) []string {
	var out []string
	for _, s := range st.PowerSteps {
		m := string(s.Method)
		if s.Operation != "" {
			m += "/" + string(s.Operation)
		}
		out = append(out, m+" "+string(s.Result))
	}
	return out
}

// VDSM's order: lock the screen (and see the session locked), run before_hibernation and wait for
// its completion, then save. Succeeded when libvirt shows the domain shut off with a save image.
func TestHibernateLockHookSave(t *testing.T) {
	g := NewWithT(t)
	r := hibernateRig(t, up, up)
	var hookWait bool
	var hookTimeout time.Duration
	r.oga.OnHook = func(_ context.Context, hook string, _, wait bool, timeout time.Duration) error {
		hookWait, hookTimeout = wait, timeout
		return nil
	}
	spec := hibernateSpec()
	spec.Hibernate = &gav1.HibernateParams{HookTimeoutSeconds: ptr.To[int32](20)}
	got := r.start(t, r.command(t, "hib", spec))()
	st := got.Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded), st.Message)
	g.Expect(st.Reason).To(Equal(gav1.ReasonHibernated))
	g.Expect(st.Message).To(ContainSubstring("managed save image"))
	g.Expect(hibernateStepsOf(st)).To(Equal([]string{"OvirtGuestAgent/LockScreen Accepted", "OvirtGuestAgent/BeforeHibernation Accepted", "ManagedSave Accepted"}))
	g.Expect(st.PowerSteps[0].Message).To(ContainSubstring("Locked"))
	g.Expect(r.save.before).To(Equal([]string{"lock " + testUUID, "hook:before_hibernation " + testUUID}), "lock and hook before the save")
	g.Expect(hookWait).To(BeTrue(), "the hook's completion is waited for")
	g.Expect(hookTimeout).To(Equal(20 * time.Second))
	g.Expect(r.qga.Calls()).To(BeEmpty())
	g.Expect(st.Agents).To(Equal([]gav1.AgentType{gav1.AgentOvirt}))
	g.Expect(r.history.keys()).To(Equal([]string{gav1.CommandKey(got)}))
}

// The session does not lock within lockTimeoutSeconds and the hooks do not complete within
// hookTimeoutSeconds: both are recorded as timed out, and the save goes on (as VDSM does).
func TestHibernateLockAndHookTimeouts(t *testing.T) {
	g := NewWithT(t)
	r := hibernateRig(t, absent, up)
	r.oga.OnLock = nil // the session stays Active
	r.oga.Set(testUUID, servicefake.OGAState(up), &guest.Info{Session: &guest.Session{State: guest.SessionActive}})
	r.oga.OnHook = func(context.Context, string, bool, bool, time.Duration) error {
		return fmt.Errorf("%w: before_hibernation after 10s", oga.ErrNoCompletion)
	}
	spec := hibernateSpec()
	spec.Hibernate = &gav1.HibernateParams{LockTimeoutSeconds: ptr.To[int32](5)}
	done := r.start(t, r.command(t, "hib", spec))
	g.Eventually(r.oga.Calls).Should(Equal([]string{"lock " + testUUID}))
	r.elapse(t, 4*time.Second)
	g.Consistently(r.oga.Calls).Should(HaveLen(1), "the hook before the lock wait ended")
	r.clock.Step(time.Second)
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded), st.Message)
	g.Expect(hibernateStepsOf(st)).To(Equal([]string{"OvirtGuestAgent/LockScreen TimedOut", "OvirtGuestAgent/BeforeHibernation TimedOut", "ManagedSave Accepted"}))
	g.Expect(st.PowerSteps[0].Message).To(ContainSubstring("still Active after 5s"))
	g.Expect(r.save.count()).To(Equal(1))
}

// A failed save: the guest is sent after_hibernation with failure, and the command fails with
// SaveFailed and the reason.
func TestHibernateSaveFails(t *testing.T) {
	g := NewWithT(t)
	r := hibernateRig(t, up, up)
	r.save.err = errors.New("managed save of vm1: operation failed: migration job: unexpectedly failed")
	st := r.start(t, r.command(t, "hib", hibernateSpec()))().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseFailed))
	g.Expect(st.Reason).To(Equal(gav1.ReasonSaveFailed))
	g.Expect(st.Message).To(ContainSubstring("unexpectedly failed"))
	g.Expect(st.Message).To(ContainSubstring("after_hibernation with failure sent"))
	g.Expect(hibernateStepsOf(st)).To(Equal([]string{"OvirtGuestAgent/LockScreen Accepted", "OvirtGuestAgent/BeforeHibernation Accepted",
		"ManagedSave Error", "OvirtGuestAgent/AfterHibernation Accepted"}))
	g.Expect(r.oga.Calls()).To(Equal([]string{"lock " + testUUID, "hook:before_hibernation " + testUUID, "hook:after_hibernation:failure " + testUUID}))
}

// Without an oVirt agent the guest steps are skipped, not failed, and the domain is saved; with
// agent OvirtGuestAgent they are required and the domain is not saved.
func TestHibernateWithoutOvirtAgent(t *testing.T) {
	g := NewWithT(t)
	r := hibernateRig(t, up, absent)
	st := r.start(t, r.command(t, "hib", hibernateSpec()))().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded), st.Message)
	g.Expect(hibernateStepsOf(st)).To(Equal([]string{"OvirtGuestAgent/LockScreen Skipped", "OvirtGuestAgent/BeforeHibernation Skipped", "ManagedSave Accepted"}))
	g.Expect(st.Agents).To(BeEmpty())

	r = hibernateRig(t, up, down)
	spec := hibernateSpec()
	spec.Agent = gav1.AgentSelectOvirt
	st = r.start(t, r.command(t, "hib", spec))().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseFailed))
	g.Expect(st.Reason).To(Equal(gav1.ReasonAgentUnavailable))
	g.Expect(hibernateStepsOf(st)).To(Equal([]string{"OvirtGuestAgent/LockScreen Skipped"}))
	g.Expect(r.save.count()).To(BeZero(), "not saved without the required preparation")
}

// A domain already shut off with a save image is hibernated; one without an image cannot be.
func TestHibernateShutOff(t *testing.T) {
	g := NewWithT(t)
	r := hibernateRig(t, absent, absent)
	d := r.domain
	d.State = virt.StateShutOff
	r.virt.Set(d, virt.LifecycleStopped)
	g.Eventually(func() bool {
		w, _ := r.e.Service.WatchPower(testUUID)
		defer w.Close()
		return w.State == virt.StateShutOff
	}).Should(BeTrue())
	st := r.start(t, r.command(t, "hib", hibernateSpec()))().Status
	g.Expect(st.Reason).To(Equal(gav1.ReasonSaveFailed))
	g.Expect(st.Message).To(ContainSubstring("nothing to save"))
	r.save.image = true
	st = r.start(t, r.command(t, "hib2", hibernateSpec()))().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded))
	g.Expect(st.Reason).To(Equal(gav1.ReasonHibernated))
	g.Expect(r.save.count()).To(BeZero())
}

// suspended makes libvirt report the domain PM-suspended.
func (r *powerRig) suspended() {
	d := r.domain
	d.State = virt.StatePMSuspended
	r.virt.Set(d, virt.LifecyclePMSuspended)
}

func suspendSpec(mode gav1.SuspendMode) gav1.GuestAgentCommandSpec {
	return gav1.GuestAgentCommandSpec{Action: gav1.ActionSuspend, Agent: gav1.AgentAuto, Fallback: gav1.FallbackNone,
		Suspend: &gav1.SuspendParams{Mode: mode}}
}

// Suspend succeeds on libvirt's PMSUSPENDED, after QGA's guest-suspend-ram.
func TestSuspendRam(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, up)
	done := r.start(t, r.command(t, "s", suspendSpec(gav1.SuspendRam)))
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga suspend-Ram"}))
	r.suspended()
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded), st.Message)
	g.Expect(st.Reason).To(Equal(gav1.ReasonSuspended))
	g.Expect(st.Message).To(HavePrefix("domain PM-suspended after QemuGuestAgent"))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent Accepted"}))
	g.Expect(st.Agents).To(Equal([]gav1.AgentType{gav1.AgentQemu}))
}

// The QEMU guest agent refuses (e.g. guest-suspend-ram disabled): the oVirt agent's hibernate mem
// follows, and its PMSUSPENDED is the success.
func TestSuspendFallsBackToOvirt(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, failing, up)
	done := r.start(t, r.command(t, "s", suspendSpec(gav1.SuspendRam)))
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga suspend-Ram", "oga hibernate:mem"}))
	r.suspended()
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded), st.Message)
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent Refused", "OvirtGuestAgent Accepted"}))
	g.Expect(st.Agents).To(Equal([]gav1.AgentType{gav1.AgentOvirt}))
}

// Disk: success is the domain shut off after the guest's own hibernation; a PMSUSPENDED/DISK on
// the way is not the end.
func TestSuspendDisk(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, absent)
	done := r.start(t, r.command(t, "s", suspendSpec(gav1.SuspendDisk)))
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga suspend-Disk"}))
	r.suspended()
	r.shutOff()
	st := done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseSucceeded), st.Message)
	g.Expect(st.Reason).To(Equal(gav1.ReasonSuspended))
	g.Expect(st.Message).To(HavePrefix("domain shut off (suspended to disk) after QemuGuestAgent"))
}

// A guest that shuts off instead of suspending to RAM fails the command; one that ignores every
// method fails with NotSuspended after the grace periods.
func TestSuspendNotSuspended(t *testing.T) {
	g := NewWithT(t)
	r := newPowerRig(t, up, absent)
	done := r.start(t, r.command(t, "s", suspendSpec(gav1.SuspendRam)))
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga suspend-Ram"}))
	r.shutOff()
	st := done().Status
	g.Expect(st.Reason).To(Equal(gav1.ReasonNotSuspended))
	g.Expect(st.Message).To(ContainSubstring("shut off instead of suspending"))

	r = newPowerRig(t, up, absent)
	spec := suspendSpec(gav1.SuspendHybrid)
	spec.Power = &gav1.PowerPolicy{GracePeriodSeconds: ptr.To[int32](30)}
	done = r.start(t, r.command(t, "s", spec))
	g.Eventually(r.agentCalls).Should(Equal([]string{"qga suspend-Hybrid"}))
	r.elapse(t, 30*time.Second)
	st = done().Status
	g.Expect(st.Phase).To(Equal(gav1.PhaseFailed))
	g.Expect(st.Reason).To(Equal(gav1.ReasonNotSuspended))
	g.Expect(stepsOf(st)).To(Equal([]string{"QemuGuestAgent TimedOut"}))
}
