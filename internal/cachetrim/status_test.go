package cachetrim

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

func TestControllerStatus(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	executed := []gav1.ExecutedCommand{{Key: "tenant/c1/abc", Action: gav1.ActionPing, Time: at}}
	release := &gav1.StatusRelease{NodeName: "node-a", Time: at}
	full := func() *gav1.GuestAgentStatus {
		return &gav1.GuestAgentStatus{
			ObjectMeta: metav1.ObjectMeta{
				Name: "vm", Namespace: "ns", UID: "u", ResourceVersion: "7", Generation: 3,
				Labels:          map[string]string{gav1.LabelNode: "node-b", gav1.LabelDomainUUID: "x"},
				Annotations:     map[string]string{"a": "b"},
				ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "agentd"}},
				OwnerReferences: []metav1.OwnerReference{{Kind: "Node", Name: "node-b"}},
			},
			Spec: gav1.GuestAgentStatusSpec{DomainName: "vm", DomainUUID: "00000000-0000-0000-0000-000000000001", NodeName: "node-b"},
			Status: gav1.GuestAgentStatusStatus{
				Conditions:       []metav1.Condition{{Type: gav1.ConditionAgentConnected, Status: metav1.ConditionTrue}},
				ActiveAgents:     gav1.ActiveAgentsQGA,
				Hostname:         "vm.example.com",
				PrimaryIP:        "10.0.0.2",
				OS:               &gav1.GuestOSInfo{Name: "Debian GNU/Linux"},
				Users:            []gav1.GuestUser{{Name: "root"}},
				Interfaces:       []gav1.GuestInterface{{Name: "eth0", IPv4: []string{"10.0.0.2/24"}}},
				Filesystems:      []gav1.GuestFilesystem{{Mountpoint: "/", UsedBytes: ptr.To[int64](1)}},
				Applications:     []string{"bash-5.2"},
				DataGroups:       []gav1.DataGroupStatus{{Name: "Hostname", Source: gav1.SourceQemu}},
				ExecutedCommands: executed,
				Release:          release,
			},
		}
	}
	out, err := ControllerStatus()(full())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*gav1.GuestAgentStatus)
	want := full()
	want.Annotations, want.ManagedFields, want.OwnerReferences = nil, nil, nil
	want.Status = gav1.GuestAgentStatusStatus{ExecutedCommands: executed, Release: release}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("trimmed status:\n got %+v\nwant %+v", got, want)
	}
	// What the controllers read is all there.
	if _, ok := gav1.FindExecutedCommand(got, "tenant/c1/abc"); !ok {
		t.Error("the executed command history was dropped")
	}
	if got.Labels[gav1.LabelNode] != "node-b" || got.Generation != 3 || got.Spec.NodeName != "node-b" {
		t.Errorf("node label, generation or spec lost: %+v", got.ObjectMeta)
	}

	// Other objects and tombstones pass unchanged.
	cmd := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: map[string]string{"a": "b"}}}
	if out, _ := ControllerStatus()(cmd); out.(*gav1.GuestAgentCommand).Annotations["a"] != "b" {
		t.Error("a GuestAgentCommand was changed")
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/vm", Obj: full()}
	out, err = ControllerStatus()(tomb)
	if err != nil || out.(toolscache.DeletedFinalStateUnknown).Obj.(*gav1.GuestAgentStatus).Status.Hostname != "vm.example.com" {
		t.Errorf("tombstone: %v %v", out, err)
	}
}
