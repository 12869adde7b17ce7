package cachetrim

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

func TestMetadata(t *testing.T) {
	fat := func() *gav1.GuestAgentCommand {
		return &gav1.GuestAgentCommand{
			ObjectMeta: metav1.ObjectMeta{
				Name: "c", Namespace: "ns", UID: "u", ResourceVersion: "7",
				Labels:        map[string]string{"l": "v"},
				Annotations:   map[string]string{"a": "big"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			},
			Spec:   gav1.GuestAgentCommandSpec{Target: "vm", Action: gav1.ActionPing},
			Status: gav1.GuestAgentCommandStatus{NodeName: "node-a"},
		}
	}
	for _, dropLabels := range []bool{false, true} {
		out, err := Metadata(dropLabels)(fat())
		if err != nil {
			t.Fatal(err)
		}
		c := out.(*gav1.GuestAgentCommand)
		if c.Annotations != nil || c.ManagedFields != nil {
			t.Errorf("dropLabels=%v: annotations %v, managedFields %v kept", dropLabels, c.Annotations, c.ManagedFields)
		}
		if (c.Labels == nil) != dropLabels {
			t.Errorf("dropLabels=%v: labels %v", dropLabels, c.Labels)
		}
		if c.Name != "c" || c.UID != "u" || c.ResourceVersion != "7" || c.Spec.Target != "vm" || c.Status.NodeName != "node-a" {
			t.Errorf("dropLabels=%v: the fields the code reads changed: %+v", dropLabels, c)
		}
	}
	// A tombstone passes unchanged.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/c", Obj: fat()}
	if out, err := Metadata(true)(tomb); err != nil || out.(toolscache.DeletedFinalStateUnknown).Key != "ns/c" {
		t.Errorf("tombstone: %v %v", out, err)
	}
}
