package v1alpha1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

const ns = "default"

func newStatus(name, uuid string) *gav1.GuestAgentStatus {
	return &gav1.GuestAgentStatus{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       gav1.GuestAgentStatusSpec{DomainName: "VM One", DomainUUID: uuid, NodeName: "node-a"},
	}
}

func newCommand(name string, action gav1.Action) *gav1.GuestAgentCommand {
	return &gav1.GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       gav1.GuestAgentCommandSpec{Target: "vm-one-12345678", Action: action},
	}
}

func mustInvalid(t *testing.T, err error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected the apiserver to reject the object (%s)", contains)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("expected Invalid, got %v", err)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
}

func TestStatusSubresourceAndImmutableUUID(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	gas := newStatus("vm-one-12345678", "12345678-1234-1234-1234-123456789abc")
	gas.Status.Hostname = "ignored-on-create"
	if err := c.Create(ctx, gas); err != nil {
		t.Fatal(err)
	}
	got := &gav1.GuestAgentStatus{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(gas), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Hostname != "" {
		t.Fatalf("status must be ignored on create with the status subresource, got %q", got.Status.Hostname)
	}

	got.Status.Hostname = "guest.example"
	got.Status.ActiveAgents = gav1.ActiveAgentsQGA
	if err := c.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	// A main-resource update cannot change status.
	got.Status.Hostname = "sneaky"
	got.Spec.NodeName = "node-b" // nodeName is mutable: migration
	if err := c.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(gas), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Hostname != "guest.example" || got.Spec.NodeName != "node-b" {
		t.Fatalf("status/spec separation broken: status.hostname=%q spec.nodeName=%q", got.Status.Hostname, got.Spec.NodeName)
	}

	got.Spec.DomainUUID = "ffffffff-1234-1234-1234-123456789abc"
	mustInvalid(t, c.Update(ctx, got), "domainUUID is immutable")
}

func TestStatusValidation(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	mustInvalid(t, c.Create(ctx, newStatus("bad-uuid", "not-a-uuid")), "spec.domainUUID")

	gas := newStatus("vm-lists-00000001", "00000001-1234-1234-1234-123456789abc")
	if err := c.Create(ctx, gas); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= gav1.MaxUsers; i++ {
		gas.Status.Users = append(gas.Status.Users, gav1.GuestUser{Name: fmt.Sprintf("u%d", i)})
	}
	mustInvalid(t, c.Status().Update(ctx, gas), "status.users")

	gas.Status.Users = gas.Status.Users[:gav1.MaxUsers]
	gas.Status.Session = "Partying"
	mustInvalid(t, c.Status().Update(ctx, gas), "status.session")

	gas.Status.Session = "Locked"
	gas.Status.Applications = []string{strings.Repeat("x", 513)}
	mustInvalid(t, c.Status().Update(ctx, gas), "status.applications")

	gas.Status.Applications = []string{strings.Repeat("x", 512)}
	gas.Status.OvirtAgent = &gav1.OvirtAgentInfo{APIVersion: ptr.To[int32](4)}
	mustInvalid(t, c.Status().Update(ctx, gas), "apiVersion")

	gas.Status.OvirtAgent.APIVersion = ptr.To[int32](3)
	if err := c.Status().Update(ctx, gas); err != nil {
		t.Fatalf("a status at every cap must be accepted: %v", err)
	}
}

func TestCommandValidation(t *testing.T) {
	ctx := context.Background()
	c := env.Client

	bad := newCommand("bad-action", "Explode")
	mustInvalid(t, c.Create(ctx, bad), "spec.action")

	hookless := newCommand("hookless", gav1.ActionHook)
	mustInvalid(t, c.Create(ctx, hookless), "action Hook needs hook parameters")

	mismatched := newCommand("mismatched", gav1.ActionReboot)
	mismatched.Spec.Shutdown = &gav1.ShutdownParams{Message: "bye"}
	mustInvalid(t, c.Create(ctx, mismatched), "shutdown parameters need action Shutdown")

	vcpuless := newCommand("vcpuless", gav1.ActionSetVCPUs)
	mustInvalid(t, c.Create(ctx, vcpuless), "action SetVCPUs needs setVCPUs parameters")
	strayVCPUs := newCommand("stray-vcpus", gav1.ActionPing)
	strayVCPUs.Spec.SetVCPUs = &gav1.SetVCPUsParams{Count: 2}
	mustInvalid(t, c.Create(ctx, strayVCPUs), "action SetVCPUs needs setVCPUs parameters")
	for name, n := range map[string]int32{"zero-vcpus": 0, "many-vcpus": 4097} {
		bad := newCommand(name, gav1.ActionSetVCPUs)
		bad.Spec.SetVCPUs = &gav1.SetVCPUsParams{Count: n}
		mustInvalid(t, c.Create(ctx, bad), "spec.setVCPUs.count")
	}
	vcpus := newCommand("vcpus-2", gav1.ActionSetVCPUs)
	vcpus.Spec.SetVCPUs = &gav1.SetVCPUsParams{Count: 2}
	if err := c.Create(ctx, vcpus); err != nil {
		t.Fatalf("SetVCPUs with count 2 must be accepted: %v", err)
	}

	acpiHook := newCommand("acpi-hook", gav1.ActionHook)
	acpiHook.Spec.Hook = &gav1.HookParams{Name: gav1.HookBeforeMigration}
	acpiHook.Spec.Fallback = gav1.FallbackACPI
	mustInvalid(t, c.Create(ctx, acpiHook), "fallback is only for Shutdown and Reboot")

	crossNS := newCommand("bad-target", gav1.ActionPing)
	crossNS.Spec.Target = "other-ns/vm"
	mustInvalid(t, c.Create(ctx, crossNS), "spec.target")

	long := newCommand("long-delay", gav1.ActionShutdown)
	long.Spec.Shutdown = &gav1.ShutdownParams{DelaySeconds: ptr.To[int32](86401)}
	mustInvalid(t, c.Create(ctx, long), "delaySeconds")

	// Power policies.
	power := func(name string, action gav1.Action, methods ...gav1.PowerMethod) *gav1.GuestAgentCommand {
		cmd := newCommand(name, action)
		cmd.Spec.Power = &gav1.PowerPolicy{Methods: methods}
		return cmd
	}
	qgaDelay := power("qga-delay", gav1.ActionShutdown, gav1.PowerQemu, gav1.PowerACPI)
	qgaDelay.Spec.Shutdown = &gav1.ShutdownParams{DelaySeconds: ptr.To[int32](30)}
	mustInvalid(t, c.Create(ctx, qgaDelay), "delaySeconds and message are served only by the oVirt guest agent")
	autoMessage := newCommand("auto-message", gav1.ActionReboot)
	autoMessage.Spec.Reboot = &gav1.RebootParams{Message: "bye"}
	mustInvalid(t, c.Create(ctx, autoMessage), "delaySeconds and message are served only by the oVirt guest agent")
	mustInvalid(t, c.Create(ctx, power("dup-methods", gav1.ActionShutdown, gav1.PowerACPI, gav1.PowerACPI)), "Duplicate value")
	// An empty list as YAML sends it (a Go client omits it).
	empty := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gav1.GroupVersion.String(), "kind": "GuestAgentCommand",
		"metadata": map[string]any{"name": "no-methods", "namespace": ns},
		"spec":     map[string]any{"target": "vm", "action": "Shutdown", "power": map[string]any{"methods": []any{}}},
	}}
	mustInvalid(t, c.Create(ctx, empty), "spec.power.methods")
	mustInvalid(t, c.Create(ctx, power("odd-method", gav1.ActionShutdown, "Hibernate")), "spec.power.methods[0]")
	mustInvalid(t, c.Create(ctx, power("ping-power", gav1.ActionPing, gav1.PowerACPI)), "power is only for Shutdown, Reboot and Suspend")
	mixed := power("mixed", gav1.ActionShutdown, gav1.PowerACPI)
	mixed.Spec.Agent = gav1.AgentSelectQemu
	mustInvalid(t, c.Create(ctx, mixed), "power.methods replaces agent and fallback")
	ogaDelay := power("oga-delay", gav1.ActionShutdown, gav1.PowerOvirt, gav1.PowerACPI, gav1.PowerDestroy)
	ogaDelay.Spec.Shutdown = &gav1.ShutdownParams{DelaySeconds: ptr.To[int32](30), Message: "bye"}
	if err := c.Create(ctx, ogaDelay); err != nil {
		t.Fatalf("an oVirt-only policy with delay and message must be accepted: %v", err)
	}
	if ptr.Deref(ogaDelay.Spec.Power.GracePeriodSeconds, 0) != gav1.DefaultPowerGracePeriodSeconds {
		t.Fatalf("gracePeriodSeconds default not applied: %+v", ogaDelay.Spec.Power)
	}

	// Hibernate and Suspend.
	hibQGA := newCommand("hib-qga", gav1.ActionHibernate)
	hibQGA.Spec.Agent = gav1.AgentSelectQemu
	mustInvalid(t, c.Create(ctx, hibQGA), "Hibernate takes agent Auto")
	hibPing := newCommand("hib-ping", gav1.ActionPing)
	hibPing.Spec.Hibernate = &gav1.HibernateParams{}
	mustInvalid(t, c.Create(ctx, hibPing), "hibernate parameters need action Hibernate")
	suspHib := newCommand("susp-hib", gav1.ActionHibernate)
	suspHib.Spec.Suspend = &gav1.SuspendParams{Mode: gav1.SuspendRam}
	mustInvalid(t, c.Create(ctx, suspHib), "suspend parameters need action Suspend")
	mustInvalid(t, c.Create(ctx, power("susp-acpi", gav1.ActionSuspend, gav1.PowerQemu, gav1.PowerACPI)), "a Suspend's power.methods take only")
	hybridOGA := newCommand("hybrid-oga", gav1.ActionSuspend)
	hybridOGA.Spec.Agent = gav1.AgentSelectOvirt
	hybridOGA.Spec.Suspend = &gav1.SuspendParams{Mode: gav1.SuspendHybrid}
	mustInvalid(t, c.Create(ctx, hybridOGA), "mode Hybrid is served only by the QEMU guest agent")
	hybridMethods := power("hybrid-methods", gav1.ActionSuspend, gav1.PowerQemu, gav1.PowerOvirt)
	hybridMethods.Spec.Suspend = &gav1.SuspendParams{Mode: gav1.SuspendHybrid}
	mustInvalid(t, c.Create(ctx, hybridMethods), "mode Hybrid is served only by the QEMU guest agent")
	badMode := newCommand("bad-mode", gav1.ActionSuspend)
	badMode.Spec.Suspend = &gav1.SuspendParams{Mode: "Sideways"}
	mustInvalid(t, c.Create(ctx, badMode), "spec.suspend.mode")
	mustInvalid(t, c.Create(ctx, power("save-method", gav1.ActionShutdown, gav1.PowerManagedSave)), "ManagedSave is the save step of a Hibernate")
	hib := newCommand("hib-1", gav1.ActionHibernate)
	hib.Spec.Hibernate = &gav1.HibernateParams{}
	if err := c.Create(ctx, hib); err != nil {
		t.Fatalf("a Hibernate must be accepted: %v", err)
	}
	if ptr.Deref(hib.Spec.Hibernate.LockTimeoutSeconds, 0) != gav1.DefaultLockTimeoutSeconds || ptr.Deref(hib.Spec.Hibernate.HookTimeoutSeconds, 0) != 10 {
		t.Fatalf("hibernate defaults not applied: %+v", hib.Spec.Hibernate)
	}
	susp := power("susp-1", gav1.ActionSuspend, gav1.PowerOvirt)
	susp.Spec.Suspend = &gav1.SuspendParams{}
	if err := c.Create(ctx, susp); err != nil {
		t.Fatalf("a Suspend with the oVirt agent must be accepted: %v", err)
	}
	if susp.Spec.Suspend.Mode != gav1.SuspendRam {
		t.Fatalf("suspend mode default not applied: %+v", susp.Spec.Suspend)
	}

	ok := newCommand("reboot-1", gav1.ActionReboot)
	if err := c.Create(ctx, ok); err != nil {
		t.Fatal(err)
	}
	// Server-side defaults.
	if ok.Spec.Agent != gav1.AgentAuto || ok.Spec.Fallback != gav1.FallbackNone ||
		ptr.Deref(ok.Spec.DeadlineSeconds, 0) != gav1.DefaultDeadlineSeconds ||
		ptr.Deref(ok.Spec.TTLSecondsAfterFinished, 0) != gav1.DefaultTTLSecondsAfterFinished {
		t.Fatalf("defaults not applied: %+v", ok.Spec)
	}
	hook := newCommand("hook-1", gav1.ActionHook)
	hook.Spec.Hook = &gav1.HookParams{Name: gav1.HookBeforeMigration}
	if err := c.Create(ctx, hook); err != nil {
		t.Fatal(err)
	}
	if !ptr.Deref(hook.Spec.Hook.WaitForCompletion, false) || ptr.Deref(hook.Spec.Hook.TimeoutSeconds, 0) != 10 {
		t.Fatalf("hook defaults not applied: %+v", hook.Spec.Hook)
	}

	// The spec is immutable.
	ok.Spec.Action = gav1.ActionShutdown
	mustInvalid(t, c.Update(ctx, ok), "spec is immutable")

	// Metadata and status stay writable.
	fresh := &gav1.GuestAgentCommand{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(ok), fresh); err != nil {
		t.Fatal(err)
	}
	fresh.Labels = map[string]string{gav1.LabelNode: "node-a"}
	if err := c.Update(ctx, fresh); err != nil {
		t.Fatalf("labels must stay writable: %v", err)
	}
	fresh.Status.Phase = gav1.PhaseScheduled
	if err := c.Status().Update(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	fresh.Status.Phase = "Exploded"
	mustInvalid(t, c.Status().Update(ctx, fresh), "status.phase")
}

// table is the server-side Table rendering that kubectl get prints.
type table struct {
	ColumnDefinitions []struct {
		Name     string `json:"name"`
		Priority int    `json:"priority"`
	} `json:"columnDefinitions"`
	Rows []struct {
		Cells []any `json:"cells"`
	} `json:"rows"`
}

func getTable(t *testing.T, resource string) table {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.GroupVersion = &gav1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = clientNegotiator()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Namespace(ns).Resource(resource).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var tb table
	if err := json.Unmarshal(raw, &tb); err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestPrinterColumns(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	gas := newStatus("vm-print-00000002", "00000002-1234-1234-1234-123456789abc")
	if err := c.Create(ctx, gas); err != nil {
		t.Fatal(err)
	}
	gas.Status = gav1.GuestAgentStatusStatus{
		ActiveAgents: gav1.ActiveAgentsBoth,
		Domain:       &gav1.DomainRunState{State: "Running", Reason: "Booted"},
		Hostname:     "printer",
		PrimaryIP:    "10.0.2.15",
		OS:           &gav1.GuestOSInfo{PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Conditions: []metav1.Condition{{
			Type: gav1.ConditionAgentConnected, Status: metav1.ConditionTrue, Reason: "Connected",
			LastTransitionTime: metav1.Now(),
		}},
	}
	if err := c.Status().Update(ctx, gas); err != nil {
		t.Fatal(err)
	}
	tb := getTable(t, "guestagentstatuses")
	var names []string
	for _, col := range tb.ColumnDefinitions {
		if col.Priority == 0 {
			names = append(names, col.Name)
		}
	}
	want := "Name,Node,Domain,State,Agent,Connected,OS,Hostname,IP,Age"
	if strings.Join(names, ",") != want {
		t.Fatalf("gas columns = %v, want %s", names, want)
	}
	found := false
	for _, r := range tb.Rows {
		if r.Cells[0] == "vm-print-00000002" {
			found = true
			got := fmt.Sprint(r.Cells[1:9])
			if got != "[node-a VM One Running Both True Debian GNU/Linux 12 (bookworm) printer 10.0.2.15]" {
				t.Fatalf("gas row = %s", got)
			}
		}
	}
	if !found {
		t.Fatal("row not found")
	}

	cmd := newCommand("print-ping", gav1.ActionPing)
	if err := c.Create(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	tb = getTable(t, "guestagentcommands")
	names = names[:0]
	for _, col := range tb.ColumnDefinitions {
		if col.Priority == 0 {
			names = append(names, col.Name)
		}
	}
	if strings.Join(names, ",") != "Name,Target,Action,Phase,Node,Age" {
		t.Fatalf("gac columns = %v", names)
	}
}

func TestSelectableFields(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	for i, node := range []string{"sel-node-1", "sel-node-2"} {
		gas := newStatus(fmt.Sprintf("vm-sel-%d-0000000%d", i, i), fmt.Sprintf("0000001%d-1234-1234-1234-123456789abc", i))
		gas.Spec.NodeName = node
		if err := c.Create(ctx, gas); err != nil {
			t.Fatal(err)
		}
	}
	list := &gav1.GuestAgentStatusList{}
	if err := c.List(ctx, list, client.InNamespace(ns),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.nodeName", "sel-node-2")}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Spec.NodeName != "sel-node-2" {
		t.Fatalf("field selector spec.nodeName returned %d items", len(list.Items))
	}
}

// The memory block takes every figure, refuses negative ones, names Libvirt as a data source,
// and -o wide shows total, usable and balloon memory.
func TestMemoryFieldsAndColumns(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	gas := newStatus("vm-memory-00000003", "00000003-1234-1234-1234-123456789abc")
	if err := c.Create(ctx, gas); err != nil {
		t.Fatal(err)
	}
	gas.Status.Memory = &gav1.GuestMemory{UsableBytes: ptr.To[int64](-1)}
	mustInvalid(t, c.Status().Update(ctx, gas), "status.memory.usableBytes")
	gas.Status.Memory = &gav1.GuestMemory{MinorPageFaults: ptr.To[int64](-5)}
	mustInvalid(t, c.Status().Update(ctx, gas), "status.memory.minorPageFaults")
	gas.Status.DataGroups = []gav1.DataGroupStatus{{Name: "Memory", Source: "Hypervisor"}}
	gas.Status.Memory = nil
	mustInvalid(t, c.Status().Update(ctx, gas), "status.dataGroups[0].source")

	big := int64(1<<63 - 1)
	gas.Status.DataGroups = []gav1.DataGroupStatus{{Name: "Memory", Source: gav1.SourceLibvirt}}
	gas.Status.Memory = &gav1.GuestMemory{TotalBytes: ptr.To[int64](2 << 30), UsableBytes: ptr.To[int64](1 << 30),
		UnusedBytes: ptr.To[int64](0), DiskCachesBytes: ptr.To[int64](1), BuffersBytes: ptr.To[int64](1), CachedBytes: ptr.To[int64](1),
		BalloonBytes: ptr.To[int64](4 << 30), HostRSSBytes: ptr.To(big), SwapInBytes: ptr.To(big), SwapOutBytes: ptr.To[int64](0),
		MajorPageFaults: ptr.To(big), MinorPageFaults: ptr.To[int64](7), SwapInPerSecond: ptr.To[int64](1),
		SwapOutPerSecond: ptr.To[int64](1), PageFaultsPerSecond: ptr.To[int64](1), MajorPageFaultsPerSecond: ptr.To[int64](1)}
	if err := c.Status().Update(ctx, gas); err != nil {
		t.Fatalf("a full memory block must be accepted: %v", err)
	}
	tb := getTable(t, "guestagentstatuses")
	col := map[string]int{}
	for i, cd := range tb.ColumnDefinitions {
		col[cd.Name] = i
	}
	for _, r := range tb.Rows {
		if r.Cells[0] != "vm-memory-00000003" {
			continue
		}
		got := fmt.Sprint(r.Cells[col["Memory"]], " ", r.Cells[col["Usable"]], " ", r.Cells[col["Balloon"]])
		if got != fmt.Sprint(float64(2<<30), " ", float64(1<<30), " ", float64(4<<30)) { // JSON numbers
			t.Fatalf("memory columns = %s", got)
		}
		for _, name := range []string{"Memory", "Usable", "Balloon"} {
			if tb.ColumnDefinitions[col[name]].Priority != 1 {
				t.Errorf("column %s must be -o wide only", name)
			}
		}
		return
	}
	t.Fatal("row not found")
}
