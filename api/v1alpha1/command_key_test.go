package v1alpha1

import (
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func int32p(v int32) *int32 { return &v }

func testCommand() *GuestAgentCommand {
	return &GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "reboot-web-1", UID: "uid-1", ResourceVersion: "7"},
		Spec: GuestAgentCommandSpec{
			Target:                  "web-1-0123abcd",
			Action:                  ActionReboot,
			Reboot:                  &RebootParams{DelaySeconds: int32p(5), Message: "bye"},
			Agent:                   AgentAuto,
			Fallback:                FallbackNone,
			DeadlineSeconds:         int32p(DefaultDeadlineSeconds),
			TTLSecondsAfterFinished: int32p(DefaultTTLSecondsAfterFinished),
		},
	}
}

func TestCommandKeyFormat(t *testing.T) {
	key := CommandKey(testCommand())
	if !regexp.MustCompile(`^tenant-a/reboot-web-1/[0-9a-f]{16}$`).MatchString(key) {
		t.Fatalf("CommandKey = %q, want <namespace>/<name>/<16 hex digits>", key)
	}
}

func TestCommandKeyStableAcrossRecreation(t *testing.T) {
	a := testCommand()
	b := testCommand()
	// A re-created object differs in everything but namespace, name and spec.
	b.UID, b.ResourceVersion, b.Generation = "uid-2", "99", 3
	b.Labels = map[string]string{LabelNode: "node-b"}
	b.Status = GuestAgentCommandStatus{Phase: PhaseSucceeded, Reason: ReasonCompleted}
	if CommandKey(a) != CommandKey(b) {
		t.Fatalf("keys differ for a re-created command: %q vs %q", CommandKey(a), CommandKey(b))
	}
	if got, again := CommandKey(a), CommandKey(a); got != again {
		t.Fatalf("CommandKey is not deterministic: %q vs %q", got, again)
	}
}

func TestCommandKeyChangesWithIdentityAndSpec(t *testing.T) {
	base := CommandKey(testCommand())
	mutations := map[string]func(c *GuestAgentCommand){
		"name":      func(c *GuestAgentCommand) { c.Name = "reboot-web-2" },
		"namespace": func(c *GuestAgentCommand) { c.Namespace = "tenant-b" },
		"target":    func(c *GuestAgentCommand) { c.Spec.Target = "other" },
		"action":    func(c *GuestAgentCommand) { c.Spec.Action = ActionShutdown; c.Spec.Reboot = nil },
		"param":     func(c *GuestAgentCommand) { c.Spec.Reboot.DelaySeconds = int32p(6) },
		"deadline":  func(c *GuestAgentCommand) { c.Spec.DeadlineSeconds = int32p(10) },
	}
	for name, mutate := range mutations {
		c := testCommand()
		mutate(c)
		if CommandKey(c) == base {
			t.Errorf("changing %s did not change the key %q", name, base)
		}
	}
}

func TestCommandKeyFitsMaxLength(t *testing.T) {
	c := testCommand()
	c.Namespace = strings.Repeat("n", 63)
	c.Name = strings.Repeat("a", 253)
	if n := len(CommandKey(c)); n > 600 {
		t.Fatalf("longest key has %d characters, more than ExecutedCommand.Key's MaxLength 600", n)
	}
}

func TestHasExecuted(t *testing.T) {
	c := testCommand()
	key := CommandKey(c)
	gas := &GuestAgentStatus{}
	if HasExecuted(gas, key) || HasExecuted(nil, key) {
		t.Fatal("HasExecuted is true on an empty history")
	}
	gas.Status.ExecutedCommands = []ExecutedCommand{
		{Key: "tenant-a/other/0000000000000000", Action: ActionPing},
		{Key: key, Action: ActionReboot, Time: metav1.Now()},
	}
	if !HasExecuted(gas, key) {
		t.Fatal("HasExecuted is false for a recorded key")
	}
	if e, ok := FindExecutedCommand(gas, key); !ok || e.Action != ActionReboot {
		t.Fatalf("FindExecutedCommand = %+v, %v", e, ok)
	}
	if HasExecuted(gas, "tenant-a/reboot-web-1/ffffffffffffffff") {
		t.Fatal("HasExecuted matches a different spec hash")
	}
}
