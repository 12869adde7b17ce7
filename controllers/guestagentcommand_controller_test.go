package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// TestCommandLifecycle walks a command through Pending → Scheduled → Running → Succeeded with
// agentd simulated by direct status writes, and checks labels, conditions, Events and metrics.
func TestCommandLifecycle(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	node := nodeName("node")
	gas := createStatus(t, ns, "vm-1", node)
	before, beforeHist := counterValue(t, gav1.ActionShutdown, ResultSucceeded), histogramCount(t, gav1.ActionShutdown)

	spec := gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionShutdown, Fallback: gav1.FallbackACPI}
	cmd := createCommand(t, ns, "shutdown-1", spec)
	key := client.ObjectKeyFromObject(cmd)

	scheduled := waitPhase(t, key, gav1.PhaseScheduled)
	g.Expect(scheduled.Status.NodeName).To(Equal(node))
	g.Expect(scheduled.Status.DomainUUID).To(Equal(gas.Spec.DomainUUID))
	g.Expect(scheduled.Status.Reason).To(Equal(gav1.ReasonScheduled))
	g.Expect(scheduled.Status.ObservedGeneration).To(Equal(scheduled.Generation))
	accepted := condition(scheduled, gav1.ConditionAccepted)
	g.Expect(accepted.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(accepted.Reason).To(Equal(gav1.ReasonScheduled))
	g.Expect(accepted.ObservedGeneration).To(Equal(scheduled.Generation))
	g.Expect(condition(scheduled, gav1.ConditionSucceeded).Status).To(Equal(metav1.ConditionUnknown))

	claimed := claim(t, key)
	// The controller leaves a Running command alone (before its deadline).
	g.Consistently(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseRunning))
		g.Expect(c.ResourceVersion).To(Equal(claimed.ResourceVersion))
	}).WithTimeout(time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	g.Expect(complete(claimed, gav1.PhaseSucceeded, gav1.ReasonCompleted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.OutcomeReported).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	final := getCommand(g, key)
	g.Expect(final.Status.Phase).To(Equal(gav1.PhaseSucceeded))
	g.Expect(condition(final, gav1.ConditionAccepted).LastTransitionTime).To(Equal(accepted.LastTransitionTime),
		"Accepted did not flip, so its lastTransitionTime is kept")
	expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, string(gav1.PhaseSucceeded))
	g.Expect(counterValue(t, gav1.ActionShutdown, ResultSucceeded)).To(Equal(before + 1))
	g.Expect(histogramCount(t, gav1.ActionShutdown)).To(Equal(beforeHist + 1))
}

// TestCommandInvalidAgentForAction fails a command whose agent can never serve its action.
func TestCommandInvalidAgentForAction(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gas := createStatus(t, ns, "vm-1", nodeName("node"))
	spec := gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionHook, Agent: gav1.AgentSelectQemu,
		Hook: &gav1.HookParams{Name: gav1.HookBeforeMigration}}
	cmd := createCommand(t, ns, "hook-qga", spec)

	failed := waitPhase(t, client.ObjectKeyFromObject(cmd), gav1.PhaseFailed)
	g.Expect(failed.Status.Reason).To(Equal(gav1.ReasonInvalidSpec))
	g.Expect(failed.Status.Message).To(ContainSubstring("OvirtGuestAgent"))
	g.Expect(failed.Status.NodeName).To(BeEmpty())
	g.Expect(failed.Status.CompletionTime).NotTo(BeNil())
	acc := condition(failed, gav1.ConditionAccepted)
	g.Expect(acc.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(acc.Reason).To(Equal(gav1.ReasonInvalidSpec))
	succ := condition(failed, gav1.ConditionSucceeded)
	g.Expect(succ.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(succ.Reason).To(Equal(gav1.ReasonInvalidSpec))
	expectEventsOnce(t, ns, cmd.Name, string(gav1.PhaseFailed))
	ev := commandEvents(g, ns, cmd.Name)[string(gav1.PhaseFailed)][0]
	g.Expect(ev.Type).To(Equal(corev1.EventTypeWarning))
	g.Expect(ev.ReportingController).To(Equal(EventRecorderName))
}

// TestCommandPowerPolicyTooLong fails a power command whose policy's waits cannot fit in its
// deadline (the schema cannot compare them), with the numbers in the message and a Warning Event.
func TestCommandPowerPolicyTooLong(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gas := createStatus(t, ns, "vm-1", nodeName("node"))
	spec := gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionShutdown, DeadlineSeconds: ptr.To[int32](100),
		Power: &gav1.PowerPolicy{Methods: []gav1.PowerMethod{gav1.PowerQemu, gav1.PowerACPI, gav1.PowerDestroy}}}
	cmd := createCommand(t, ns, "off-too-long", spec)

	failed := waitPhase(t, client.ObjectKeyFromObject(cmd), gav1.PhaseFailed)
	g.Expect(failed.Status.Reason).To(Equal(gav1.ReasonInvalidSpec))
	g.Expect(failed.Status.Message).To(ContainSubstring("deadlineSeconds 100 is shorter than the power policy's waits (3 methods x gracePeriodSeconds 60 = 180s)"))
	g.Expect(failed.Status.NodeName).To(BeEmpty())
	expectEventsOnce(t, ns, cmd.Name, string(gav1.PhaseFailed))
}

// TestCommandCrossNamespaceTargetRefused: a command never resolves a status of another namespace,
// even when one with the target's name exists there; it stays Pending and then misses its deadline.
func TestCommandCrossNamespaceTargetRefused(t *testing.T) {
	g := NewWithT(t)
	nsA, nsB := newNamespace(t), newNamespace(t)
	createStatus(t, nsB, "vm-b", nodeName("node-b"))
	spec := rebootSpec("vm-b")
	spec.DeadlineSeconds = ptr.To[int32](3)
	cmd := createCommand(t, nsA, "reboot-b", spec)
	key := client.ObjectKeyFromObject(cmd)

	g.Eventually(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.Phase).To(Equal(gav1.PhasePending))
		acc := condition(c, gav1.ConditionAccepted)
		g.Expect(acc.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(acc.Reason).To(Equal(gav1.ReasonTargetNotFound))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	// Never labelled for B's node, never scheduled, until the deadline fails it.
	g.Eventually(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.NodeName).To(BeEmpty())
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseFailed))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	failed := getCommand(g, key)
	g.Expect(failed.Status.Reason).To(Equal(gav1.ReasonDeadlineExceeded))
	g.Expect(condition(failed, gav1.ConditionAccepted).Reason).To(Equal(gav1.ReasonTargetNotFound))
	g.Expect(failed.Status.CompletionTime.Time).To(BeTemporally(">=", failed.CreationTimestamp.Add(3*time.Second)))
	expectEventsOnce(t, nsA, cmd.Name, gav1.ReasonTargetNotFound, gav1.ReasonDeadlineExceeded)
}

// TestCommandTargetAppearsLater: a Pending command waiting for its target is scheduled as soon as
// the target is created (through the status watch, not the backoff).
func TestCommandTargetAppearsLater(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	cmd := createCommand(t, ns, "ping-later", gav1.GuestAgentCommandSpec{Target: "vm-later", Action: gav1.ActionPing})
	key := client.ObjectKeyFromObject(cmd)
	g.Eventually(func(g Gomega) {
		g.Expect(condition(getCommand(g, key), gav1.ConditionAccepted).Reason).To(Equal(gav1.ReasonTargetNotFound))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	node := nodeName("node")
	createStatus(t, ns, "vm-later", node)
	scheduled := waitPhase(t, key, gav1.PhaseScheduled)
	g.Expect(scheduled.Status.NodeName).To(Equal(node))
	g.Expect(condition(scheduled, gav1.ConditionAccepted).Status).To(Equal(metav1.ConditionTrue))
	// The wait is reported once, not once per retry.
	expectEventsOnce(t, ns, cmd.Name, gav1.ReasonTargetNotFound, gav1.ReasonScheduled)
}

// TestCommandAlreadyExecuted is the GitOps re-creation case: a command runs, agentd records its
// key on the target, TTL (here: a prune) deletes it, the same manifest is applied again and
// finishes at once as AlreadyExecuted without being scheduled.
func TestCommandAlreadyExecuted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	gas := createStatus(t, ns, "vm-1", nodeName("node"))
	spec := rebootSpec(gas.Name)
	spec.Reboot = &gav1.RebootParams{DelaySeconds: ptr.To[int32](5), Message: "maintenance"}
	spec.Power.Methods = []gav1.PowerMethod{gav1.PowerOvirt} // delay and message: the oVirt agent only
	first := createCommand(t, ns, "reboot-gitops", spec)
	key := client.ObjectKeyFromObject(first)
	claimed := claim(t, key)
	g.Expect(complete(claimed, gav1.PhaseSucceeded, gav1.ReasonCompleted)).To(Succeed())

	// agentd records the executed key on the target.
	done := getCommand(g, key)
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(gas), gas)).To(Succeed())
	gas.Status.ExecutedCommands = append(gas.Status.ExecutedCommands,
		gav1.ExecutedCommand{Key: gav1.CommandKey(done), Action: done.Spec.Action, Time: metav1.Now()})
	g.Expect(k8s.Status().Update(ctx, gas)).To(Succeed())

	before := counterValue(t, gav1.ActionReboot, ResultAlreadyExecuted)
	g.Expect(k8s.Delete(ctx, done)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, key, &gav1.GuestAgentCommand{}))
	}).WithTimeout(timeout).WithPolling(poll).Should(BeTrue())

	again := createCommand(t, ns, "reboot-gitops", spec)
	g.Expect(again.UID).NotTo(Equal(done.UID))
	final := waitPhase(t, key, gav1.PhaseSucceeded)
	g.Expect(final.Status.Reason).To(Equal(gav1.ReasonAlreadyExecuted))
	g.Expect(final.Status.StartTime).To(BeNil(), "never claimed")
	g.Expect(final.Status.NodeName).To(BeEmpty(), "never scheduled to a node")
	g.Expect(condition(final, gav1.ConditionAccepted).Reason).To(Equal(gav1.ReasonAlreadyExecuted))
	g.Eventually(func() float64 { return counterValue(t, gav1.ActionReboot, ResultAlreadyExecuted) }).
		WithTimeout(timeout).WithPolling(poll).Should(Equal(before + 1))

	ev := map[string]int{}
	g.Eventually(func(g Gomega) {
		evs := commandEvents(g, ns, again.Name)
		for _, r := range []string{gav1.ReasonScheduled, string(gav1.PhaseSucceeded), gav1.ReasonAlreadyExecuted} {
			ev[r] = eventCount(evs, r)
		}
		// Both incarnations share the name: the first was scheduled and succeeded, the second
		// only reports AlreadyExecuted.
		g.Expect(ev).To(Equal(map[string]int{gav1.ReasonScheduled: 1, string(gav1.PhaseSucceeded): 1, gav1.ReasonAlreadyExecuted: 1}))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

// TestCommandDeadline fails Scheduled and Running commands at their deadline; agentd's late
// outcome then loses (optimistic lock, and the apiserver keeps terminal phases).
func TestCommandDeadline(t *testing.T) {
	ns := newNamespace(t)
	gas := createStatus(t, ns, "vm-1", nodeName("node"))

	t.Run("Scheduled", func(t *testing.T) {
		g := NewWithT(t)
		spec := rebootSpec(gas.Name)
		spec.DeadlineSeconds = ptr.To[int32](2)
		cmd := createCommand(t, ns, "reboot-unclaimed", spec)
		key := client.ObjectKeyFromObject(cmd)
		waitPhase(t, key, gav1.PhaseScheduled)
		failed := waitPhase(t, key, gav1.PhaseFailed)
		g.Expect(failed.Status.Reason).To(Equal(gav1.ReasonDeadlineExceeded))
		g.Expect(failed.Status.Message).To(ContainSubstring("Scheduled"))
		g.Expect(failed.Status.CompletionTime.Time).To(BeTemporally(">=", failed.CreationTimestamp.Add(2*time.Second)))
		expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, gav1.ReasonDeadlineExceeded)
	})

	t.Run("Running", func(t *testing.T) {
		g := NewWithT(t)
		spec := rebootSpec(gas.Name)
		spec.DeadlineSeconds = ptr.To[int32](3)
		cmd := createCommand(t, ns, "reboot-slow", spec)
		key := client.ObjectKeyFromObject(cmd)
		claimed := claim(t, key)
		failed := waitPhase(t, key, gav1.PhaseFailed)
		g.Expect(failed.Status.Reason).To(Equal(gav1.ReasonDeadlineExceeded))
		g.Expect(failed.Status.ClaimedBy).To(Equal("agentd-test"))

		// agentd's late outcome, locked to its claim, conflicts...
		err := complete(claimed, gav1.PhaseSucceeded, gav1.ReasonCompleted)
		g.Expect(apierrors.IsConflict(err)).To(BeTrue(), "late outcome write: %v", err)
		// ...and even an unlocked write (no resourceVersion: the controller may still be writing
		// its outcome annotation) cannot flip the terminal phase.
		fresh := getCommand(g, key)
		fresh.ResourceVersion = ""
		err = complete(fresh, gav1.PhaseSucceeded, gav1.ReasonCompleted)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "flipping a terminal phase: %v", err)
		g.Expect(getCommand(g, key).Status.Phase).To(Equal(gav1.PhaseFailed))
		expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, gav1.ReasonDeadlineExceeded)
	})
}

// TestCommandTTL deletes finished commands ttlSecondsAfterFinished after completion.
func TestCommandTTL(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	gas := createStatus(t, ns, "vm-1", nodeName("node"))
	spec := gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionSetTime, TTLSecondsAfterFinished: ptr.To[int32](2)}
	cmd := createCommand(t, ns, "settime", spec)
	key := client.ObjectKeyFromObject(cmd)
	claimed := claim(t, key)
	g.Expect(complete(claimed, gav1.PhaseSucceeded, gav1.ReasonCompleted)).To(Succeed())
	done := waitPhase(t, key, gav1.PhaseSucceeded)

	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, key, &gav1.GuestAgentCommand{}))
	}).WithTimeout(timeout).WithPolling(poll).Should(BeTrue())
	g.Expect(time.Now()).To(BeTemporally(">=", done.Status.CompletionTime.Add(2*time.Second)))
	// The outcome was reported before the deletion, and its Event outlives the command.
	expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, string(gav1.PhaseSucceeded))

	// A failed command with TTL 0 goes at once (after being reported).
	bad := createCommand(t, ns, "lock-qga", gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionLockScreen,
		Agent: gav1.AgentSelectQemu, TTLSecondsAfterFinished: ptr.To[int32](0)})
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(bad), &gav1.GuestAgentCommand{}))
	}).WithTimeout(timeout).WithPolling(poll).Should(BeTrue())
	expectEventsOnce(t, ns, bad.Name, string(gav1.PhaseFailed))
}

// TestCommandRetargetAfterMigration follows the domain to its new node while the command is
// unclaimed, and never moves a claimed (Running) command.
func TestCommandRetargetAfterMigration(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	nodeA, nodeB, nodeC := nodeName("node-a"), nodeName("node-b"), nodeName("node-c")
	gas := createStatus(t, ns, "vm-1", nodeA)
	cmd := createCommand(t, ns, "reboot-migrating", rebootSpec(gas.Name))
	key := client.ObjectKeyFromObject(cmd)
	scheduled := waitPhase(t, key, gav1.PhaseScheduled)
	g.Expect(scheduled.Status.NodeName).To(Equal(nodeA))

	migrate(t, gas, nodeB)
	g.Eventually(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.NodeName).To(Equal(nodeB))
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseScheduled))
		g.Expect(c.Status.DomainUUID).To(Equal(gas.Spec.DomainUUID))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	claimed := claim(t, key)
	migrate(t, gas, nodeC)
	g.Consistently(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseRunning))
		g.Expect(c.Status.NodeName).To(Equal(nodeB))
		g.Expect(c.ResourceVersion).To(Equal(claimed.ResourceVersion))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, "Retargeted")
}

// migrate hands gas over to node the way agentd does: the agentd of the node it names releases it
// (status.release), then the destination's agentd relabels it.
func migrate(t *testing.T, gas *gav1.GuestAgentStatus, node string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ensureNode(t, node)
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(gas), gas)).To(Succeed())
	gas.Status.Release = &gav1.StatusRelease{NodeName: gas.Spec.NodeName, Time: metav1.Now().Rfc3339Copy()}
	g.Expect(k8s.Status().Update(ctx, gas)).To(Succeed())
	takeOver(t, gas, node)
}

// takeOver relabels gas to node, released or not.
func takeOver(t *testing.T, gas *gav1.GuestAgentStatus, node string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ensureNode(t, node)
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(gas), gas)).To(Succeed())
	gas.Spec.NodeName = node
	gas.Labels[gav1.LabelNode] = node
	g.Expect(k8s.Update(ctx, gas)).To(Succeed())
}

// TestCommandNotRetargetedToHijacker: a node that takes the target over without a release by the
// node the command is scheduled to (which still exists) does not get the command; a Warning Event
// says so once. A later legitimate hand-over, or the scheduled node's Node object going away,
// moves the command.
func TestCommandNotRetargetedToHijacker(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	nodeA, nodeB, nodeC := nodeName("node-a"), nodeName("node-b"), nodeName("node-c")
	gas := createStatus(t, ns, "vm-1", nodeA)
	cmd := createCommand(t, ns, "reboot-hijacked", rebootSpec(gas.Name))
	key := client.ObjectKeyFromObject(cmd)
	waitPhase(t, key, gav1.PhaseScheduled)

	takeOver(t, gas, nodeB) // no release by node-a
	g.Eventually(func(g Gomega) {
		g.Expect(eventCount(commandEvents(g, ns, cmd.Name), ReasonRetargetRefused)).To(Equal(1))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseScheduled))
		g.Expect(c.Status.NodeName).To(Equal(nodeA))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// node-a takes its object back (the rightful agentd's reclaim), then releases it for real.
	takeOver(t, gas, nodeA)
	migrate(t, gas, nodeC)
	g.Eventually(func(g Gomega) {
		g.Expect(getCommand(g, key).Status.NodeName).To(Equal(nodeC))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	// The Node object of node-c is deleted: its agentd can release nothing, the take-over counts.
	cmd2 := createCommand(t, ns, "reboot-node-gone", rebootSpec(gas.Name))
	key2 := client.ObjectKeyFromObject(cmd2)
	g.Eventually(func(g Gomega) {
		g.Expect(getCommand(g, key2).Status.NodeName).To(Equal(nodeC))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	nodeD := nodeName("node-d")
	takeOver(t, gas, nodeD) // refused while node-c exists
	g.Eventually(func(g Gomega) {
		g.Expect(eventCount(commandEvents(g, ns, cmd2.Name), ReasonRetargetRefused)).To(Equal(1))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(k8s.Delete(ctx, testenv.Node(nodeC))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getCommand(g, key2).Status.NodeName).To(Equal(nodeD))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

// TestCommandTerminalSticky: the apiserver refuses to flip a terminal phase, and the controller
// never writes a terminal command's status (a changed message stays as written).
func TestCommandTerminalSticky(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	gas := createStatus(t, ns, "vm-1", nodeName("node"))
	cmd := createCommand(t, ns, "ping", gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionPing})
	key := client.ObjectKeyFromObject(cmd)
	g.Expect(complete(claim(t, key), gav1.PhaseSucceeded, gav1.ReasonCompleted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getCommand(g, key).Status.OutcomeReported).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	flip := getCommand(g, key)
	flip.Status.Phase, flip.Status.Reason = gav1.PhaseFailed, gav1.ReasonAgentError
	err := k8s.Status().Update(ctx, flip)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "flipping Succeeded to Failed: %v", err)
	back := getCommand(g, key)
	back.Status.Phase = gav1.PhaseRunning
	g.Expect(apierrors.IsInvalid(k8s.Status().Update(ctx, back))).To(BeTrue())

	// A non-phase edit is allowed by the API; the controller must not "repair" or report it.
	edited := getCommand(g, key)
	edited.Status.Message = "edited by a human"
	g.Expect(k8s.Status().Update(ctx, edited)).To(Succeed())
	g.Consistently(func(g Gomega) {
		c := getCommand(g, key)
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseSucceeded))
		g.Expect(c.Status.Message).To(Equal("edited by a human"))
		g.Expect(c.ResourceVersion).To(Equal(edited.ResourceVersion))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, string(gav1.PhaseSucceeded))
}

// TestControllerRestart stops the manager between transitions and starts new ones: each
// transition still happens and is reported exactly once.
func TestControllerRestart(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gas := createStatus(t, ns, "vm-1", nodeName("node"))
	before := counterValue(t, gav1.ActionThawFilesystems, ResultSucceeded)

	cmd := createCommand(t, ns, "thaw", gav1.GuestAgentCommandSpec{Target: gas.Name, Action: gav1.ActionThawFilesystems})
	key := client.ObjectKeyFromObject(cmd)
	waitPhase(t, key, gav1.PhaseScheduled)
	g.Eventually(func(g Gomega) {
		g.Expect(eventCount(commandEvents(g, ns, cmd.Name), gav1.ReasonScheduled)).To(Equal(1))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	mgr.stop()
	// agentd claims and finishes while no controller runs.
	claimed := claim(t, key)
	g.Expect(complete(claimed, gav1.PhaseSucceeded, gav1.ReasonCompleted)).To(Succeed())

	var err error
	restart := func() {
		t.Helper()
		if mgr, err = startManager(); err != nil {
			t.Fatalf("restarting manager: %v", err)
		}
	}
	restart()
	g.Eventually(func(g Gomega) {
		g.Expect(getCommand(g, key).Status.OutcomeReported).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(eventCount(commandEvents(g, ns, cmd.Name), string(gav1.PhaseSucceeded))).To(Equal(1))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	reported := getCommand(g, key)

	// Once more: a fresh manager sees a reported terminal command and does nothing.
	mgr.stop()
	restart()
	g.Consistently(func(g Gomega) {
		g.Expect(getCommand(g, key).ResourceVersion).To(Equal(reported.ResourceVersion))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, string(gav1.PhaseSucceeded))
	g.Expect(counterValue(t, gav1.ActionThawFilesystems, ResultSucceeded)).To(Equal(before + 1))
}

// TestCommandTargetReplaced: when the target name is reused for another domain before the command
// was claimed, the command fails with DomainNotFound instead of following the new domain.
func TestCommandTargetReplaced(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	node := nodeName("node")
	gas := createStatus(t, ns, "vm-1", node)
	cmd := createCommand(t, ns, "reboot-replaced", rebootSpec(gas.Name))
	key := client.ObjectKeyFromObject(cmd)
	waitPhase(t, key, gav1.PhaseScheduled)

	g.Expect(k8s.Delete(ctx, gas)).To(Succeed())
	replacement := createStatus(t, ns, "vm-1", node)
	g.Expect(replacement.Spec.DomainUUID).NotTo(Equal(gas.Spec.DomainUUID))
	failed := waitPhase(t, key, gav1.PhaseFailed)
	g.Expect(failed.Status.Reason).To(Equal(gav1.ReasonDomainNotFound))
	g.Expect(failed.Status.DomainUUID).To(Equal(gas.Spec.DomainUUID))
	expectEventsOnce(t, ns, cmd.Name, gav1.ReasonScheduled, string(gav1.PhaseFailed))
}
