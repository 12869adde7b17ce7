package main

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/controllers"
)

// TestCacheKeepsOnlyWhatControllersRead: the manager's cache options trim GuestAgentStatus
// objects to what the controllers read, and GuestAgentCommands to their spec and status.
func TestCacheKeepsOnlyWhatControllersRead(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	var gasTransform, cmdTransform func(any) (any, error)
	for obj, bo := range controllers.CacheOptions().ByObject {
		switch obj.(type) {
		case *gav1.GuestAgentStatus:
			gasTransform = bo.Transform
		case *gav1.GuestAgentCommand:
			cmdTransform = bo.Transform
		}
	}
	if gasTransform == nil || cmdTransform == nil {
		t.Fatalf("the manager's cache has no transform for statuses (%v) or commands (%v)", gasTransform != nil, cmdTransform != nil)
	}
	out, err := gasTransform(&gav1.GuestAgentStatus{
		ObjectMeta: metav1.ObjectMeta{Name: "vm", Namespace: "ns", Generation: 2,
			Labels:        map[string]string{gav1.LabelNode: "node-a"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "agentd"}}},
		Spec: gav1.GuestAgentStatusSpec{DomainName: "vm", DomainUUID: "00000000-0000-0000-0000-000000000001", NodeName: "node-a"},
		Status: gav1.GuestAgentStatusStatus{
			Hostname: "vm", Applications: []string{"bash-5.2"},
			Interfaces:       []gav1.GuestInterface{{Name: "eth0"}},
			Conditions:       []metav1.Condition{{Type: gav1.ConditionAgentConnected, Status: metav1.ConditionTrue}},
			ExecutedCommands: []gav1.ExecutedCommand{{Key: "ns/c/h", Action: gav1.ActionPing, Time: at}},
			Release:          &gav1.StatusRelease{NodeName: "node-b", Time: at},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	gas := out.(*gav1.GuestAgentStatus)
	st := gas.Status
	if st.Hostname != "" || st.Applications != nil || st.Interfaces != nil || st.Conditions != nil || gas.ManagedFields != nil {
		t.Errorf("guest data or managedFields kept: %+v", gas)
	}
	if len(st.ExecutedCommands) != 1 || st.Release == nil || gas.Spec.NodeName != "node-a" ||
		gas.Labels[gav1.LabelNode] != "node-a" || gas.Generation != 2 {
		t.Errorf("a field the controllers read was dropped: %+v", gas)
	}
	out, err = cmdTransform(&gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: "c",
		Annotations: map[string]string{"a": "b"}}, Spec: gav1.GuestAgentCommandSpec{Target: "vm"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := out.(*gav1.GuestAgentCommand); c.Annotations != nil || c.Spec.Target != "vm" {
		t.Errorf("command: %+v", c)
	}
}
