package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

func TestLowestRequeue(t *testing.T) {
	r := func(d time.Duration) ctrl.Result { return ctrl.Result{RequeueAfter: d} }
	cases := []struct{ a, b, want ctrl.Result }{
		{r(0), r(0), r(0)},
		{r(0), r(time.Second), r(time.Second)},
		{r(time.Second), r(0), r(time.Second)},
		{r(3 * time.Second), r(time.Second), r(time.Second)},
		{r(time.Second), r(3 * time.Second), r(time.Second)},
	}
	for _, c := range cases {
		if got := lowestRequeue(c.a, c.b); got != c.want {
			t.Errorf("lowestRequeue(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestTargetBackoff(t *testing.T) {
	r := &GuestAgentCommandReconciler{MaxTargetBackoff: 30 * time.Second}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)}}
	for age, want := range map[time.Duration]time.Duration{
		0: time.Second, 2 * time.Second: time.Second, 40 * time.Second: 10 * time.Second, time.Hour: 30 * time.Second,
	} {
		s := &commandScope{cmd: cmd, now: created.Add(age)}
		if got := r.targetBackoff(s); got != want {
			t.Errorf("targetBackoff at age %s = %s, want %s", age, got, want)
		}
	}
}

func TestCompletionTime(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)}}
	if got := completionTime(cmd); !got.Equal(created) {
		t.Errorf("without completion data: %s, want the creation time", got)
	}
	settled := created.Add(time.Minute)
	cmd.Status.Conditions = []metav1.Condition{{Type: gav1.ConditionSucceeded, Status: metav1.ConditionFalse, LastTransitionTime: metav1.NewTime(settled)}}
	if got := completionTime(cmd); !got.Equal(settled) {
		t.Errorf("from the Succeeded condition: %s, want %s", got, settled)
	}
	done := created.Add(2 * time.Minute)
	cmd.Status.CompletionTime = &metav1.Time{Time: done}
	if got := completionTime(cmd); !got.Equal(done) {
		t.Errorf("from completionTime: %s, want %s", got, done)
	}
}

// TestConditionTransitionTime: lastTransitionTime moves only when the status flips.
func TestConditionTransitionTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &commandScope{cmd: &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Generation: 1}}, now: t0}
	s.setCondition(gav1.ConditionAccepted, metav1.ConditionFalse, gav1.ReasonTargetNotFound, "missing")
	s.now = t0.Add(time.Minute)
	s.setCondition(gav1.ConditionAccepted, metav1.ConditionFalse, gav1.ReasonDeadlineExceeded, "late")
	c := s.cmd.Status.Conditions[0]
	if !c.LastTransitionTime.Time.Equal(t0) || c.Reason != gav1.ReasonDeadlineExceeded || c.ObservedGeneration != 1 {
		t.Fatalf("same status: %+v, want lastTransitionTime %s kept and the new reason", c, t0)
	}
	s.now = t0.Add(2*time.Minute + 500*time.Millisecond)
	s.setCondition(gav1.ConditionAccepted, metav1.ConditionTrue, gav1.ReasonScheduled, "ok")
	if c := s.cmd.Status.Conditions[0]; !c.LastTransitionTime.Time.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("flipped status: lastTransitionTime %s, want %s (truncated to seconds)", c.LastTransitionTime, t0.Add(2*time.Minute))
	}
}
