package install

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/controllers"
	"guestagent.io/operator/internal/testenv"
)

// The tenancy tests run the controller manager in-process as its own ServiceAccount (the
// generated ClusterRole and the leader-election Role, nothing more), agentd as node-bound tokens
// of its ServiceAccount (agentd's ClusterRole and the admission policy), and a tenant user with
// what the built-in edit role aggregates in one namespace: the tenants' own view of the product.
const (
	// tenancySys holds the ServiceAccounts of the manager and agentd (the install namespace).
	tenancySys = "tenancy-sys"
	// tenantNS is the tenant's namespace; it opts in to agentd's statuses.
	tenantNS = "tenancy-tenant"
	// tenantUser has edit in tenantNS only.
	tenantUser = "alice"
	// statusesLabel is the namespace label by which a namespace opts in to agentd's statuses.
	statusesLabel = "guestagent.io/statuses"
)

// tenancy is the shared setup of the tenancy tests, started once by startTenancy.
var tenancy struct {
	once   sync.Once
	err    error
	tenant client.Client
	agentd map[string]client.Client // by node
	logs   *errorLog
}

// startTenancy installs RBAC and the admission policy, starts the manager and returns once
// everything is in place.
func startTenancy(t *testing.T) {
	t.Helper()
	tenancy.once.Do(func() { tenancy.err = setupTenancy(t) })
	if tenancy.err != nil {
		t.Fatal(tenancy.err)
	}
}

func setupTenancy(t *testing.T) error {
	ctx := context.Background()
	ctrl.SetLogger(logr.Discard()) // the caches of the tests; the manager logs to tenancy.logs
	c := env.Client
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: tenancySys}},
		{ObjectMeta: metav1.ObjectMeta{Name: tenantNS, Labels: map[string]string{statusesLabel: "enabled"}}},
	} {
		if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	for _, n := range []string{"node-a", "node-b"} {
		if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}

	// agentd: its ClusterRole and the admission policy as config/default installs them.
	bindClusterRole(t, tenancySys, "agentd", "config/agentd/rbac/role.yaml")
	objs := decodeAll(t, run(t, "kustomize", "build", "config/policy"))
	var policyName string
	for _, o := range objs {
		o.SetName("t-" + o.GetName())
		if o.GetKind() == "ValidatingAdmissionPolicy" {
			setAgentdUser(t, o, tenancySys, "agentd")
			policyName = o.GetName()
		} else if err := setPolicyName(o, "t-agentd-node-restriction"); err != nil {
			return err
		}
		if err := apply(ctx, o); err != nil {
			return err
		}
	}
	agentdUser := "system:serviceaccount:" + tenancySys + ":agentd"
	tenancy.agentd = map[string]client.Client{
		"node-a": impersonateIn(t, tenancySys, agentdUser, "node-a"),
		"node-b": impersonateIn(t, tenancySys, agentdUser, "node-b"),
	}
	probe := impersonateIn(t, tenancySys, agentdUser, "")
	NewWithT(t).Eventually(func() error {
		err := probe.Create(ctx, &gav1.GuestAgentStatus{
			ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: tenantNS, Labels: map[string]string{gav1.LabelNode: "node-a"}},
			Spec:       gav1.GuestAgentStatusSpec{DomainName: "probe", DomainUUID: "0f1c2a9e-0000-4000-8000-0000000000ff", NodeName: "node-a"},
		}, client.DryRunAll)
		if isDeniedBy(err, policyName) {
			return nil
		}
		return fmt.Errorf("probe not denied by the policy yet: %v", err)
	}).WithTimeout(30*time.Second).Should(Succeed(), "policy "+policyName+" active")

	// The tenant: what the built-in edit role aggregates (its core rules and the product's
	// aggregated roles), bound in the tenant's namespace only.
	for _, f := range []string{"config/rbac/guestagentcommand_editor_role.yaml", "config/rbac/guestagentstatus_viewer_role.yaml"} {
		role := clusterRoleFromFile(t, f)
		role.Name = "t-" + role.Name
		mustCreate(t, role)
		bindInNamespace(t, tenantNS, role.Name, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: tenantUser})
	}
	bindInNamespace(t, tenantNS, "system:aggregate-to-edit", rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: tenantUser})
	tenantCfg := rest.CopyConfig(env.Config)
	tenantCfg.Impersonate = rest.ImpersonationConfig{UserName: tenantUser, Groups: []string{"system:authenticated"}}
	var err error
	if tenancy.tenant, err = client.New(tenantCfg, client.Options{Scheme: env.Scheme}); err != nil {
		return err
	}

	// The manager: its generated ClusterRole and the leader-election Role, nothing more.
	bindClusterRole(t, tenancySys, "manager", "config/rbac/role.yaml")
	var le rbacv1.Role
	if err := yaml.Unmarshal(readFile(t, "config/rbac/leader_election_role.yaml"), &le); err != nil {
		return err
	}
	le.Namespace = tenancySys
	mustCreate(t, &le)
	mustCreate(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "t-leader-election", Namespace: tenancySys},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: le.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "manager", Namespace: tenancySys}},
	})
	mgrCfg := rest.CopyConfig(env.Config)
	mgrCfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + tenancySys + ":manager",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + tenancySys, "system:authenticated"},
	}
	tenancy.logs = newErrorLog()
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme:                        env.Scheme,
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              "guestagent-controller.guestagent.io",
		LeaderElectionNamespace:       tenancySys,
		LeaderElectionReleaseOnCancel: true,
		// Generous renewal bounds: the tests load the API server heavily (fat objects, -race),
		// and a manager that loses its lease stops reconciling for the rest of the package.
		LeaseDuration: ptrTo(2 * time.Minute),
		RenewDeadline: ptrTo(90 * time.Second),
		Logger:        logr.New(tenancy.logs),
	})
	if err != nil {
		return err
	}
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		StatusGCInterval: -1,
		Controller:       controller.Options{SkipNameValidation: ptrTo(true), MaxConcurrentReconciles: 4},
	}); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			tenancy.logs.Error(err, "manager stopped")
		}
	}()
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// setPolicyName points a ValidatingAdmissionPolicyBinding at the named policy.
func setPolicyName(binding interface{ UnstructuredContent() map[string]any }, name string) error {
	spec, ok := binding.UnstructuredContent()["spec"].(map[string]any)
	if !ok {
		return fmt.Errorf("binding without spec")
	}
	spec["policyName"] = name
	return nil
}

// clusterRoleFromFile reads a ClusterRole from a file of the repository.
func clusterRoleFromFile(t *testing.T, rel string) *rbacv1.ClusterRole {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(readFile(t, rel), &role); err != nil {
		t.Fatal(err)
	}
	return &role
}

// bindClusterRole creates ServiceAccount sa in ns and binds it cluster-wide to a copy of the
// ClusterRole in file rel.
func bindClusterRole(t *testing.T, ns, sa, rel string) {
	t.Helper()
	role := clusterRoleFromFile(t, rel)
	role.Name = "test-" + ns + "-" + sa
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}})
	mustCreate(t, role)
	mustCreate(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	})
}

// bindInNamespace binds subject to ClusterRole role in namespace ns.
func bindInNamespace(t *testing.T, ns, role string, subject rbacv1.Subject) {
	t.Helper()
	mustCreate(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(role, ":", "-") + "-" + subject.Name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{subject},
	})
}

// errorLog is a logr sink that keeps the manager's error-level lines (with their key/value
// pairs) and drops the rest. Sinks derived by WithValues/WithName share the lines and the lock.
type errorLog struct {
	shared *errorLines
	values []any
}

type errorLines struct {
	mu    sync.Mutex
	lines []string
}

func newErrorLog() *errorLog { return &errorLog{shared: &errorLines{}} }

func (l *errorLog) Init(logr.RuntimeInfo)    {}
func (l *errorLog) Enabled(int) bool         { return false }
func (l *errorLog) Info(int, string, ...any) {}
func (l *errorLog) Error(err error, msg string, kv ...any) {
	line := fmt.Sprint(msg, " ", err, " ", append(slices.Clone(l.values), kv...))
	l.shared.mu.Lock()
	defer l.shared.mu.Unlock()
	l.shared.lines = append(l.shared.lines, line)
}
func (l *errorLog) WithValues(kv ...any) logr.LogSink {
	return &errorLog{shared: l.shared, values: append(slices.Clone(l.values), kv...)}
}
func (l *errorLog) WithName(string) logr.LogSink { return l.WithValues() }

// Lines returns the error lines logged so far that contain s.
func (l *errorLog) Lines(s string) []string {
	l.shared.mu.Lock()
	defer l.shared.mu.Unlock()
	var out []string
	for _, line := range l.shared.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// tenantStatus creates, as an administrator, a GuestAgentStatus of node in the tenant's namespace.
func tenantStatus(t *testing.T, name, node string) *gav1.GuestAgentStatus {
	t.Helper()
	gas := &gav1.GuestAgentStatus{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenantNS, Labels: map[string]string{gav1.LabelNode: node}},
		Spec:       gav1.GuestAgentStatusSpec{DomainName: name, DomainUUID: "0f1c2a9e-0000-4000-8000-0000000000" + fmt.Sprintf("%02x", len(name)), NodeName: node},
	}
	mustCreate(t, gas)
	return gas
}

// tenantCommand creates a command as the tenant and waits until the controller scheduled it.
func tenantCommand(t *testing.T, g Gomega, name, target string, action gav1.Action) *gav1.GuestAgentCommand {
	t.Helper()
	cmd := &gav1.GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenantNS},
		Spec:       gav1.GuestAgentCommandSpec{Target: target, Action: action},
	}
	g.Expect(tenancy.tenant.Create(context.Background(), cmd)).To(Succeed())
	return cmd
}

// waitCommand waits until the command satisfies cond and returns it.
func waitCommand(g Gomega, cmd *gav1.GuestAgentCommand, cond func(Gomega, *gav1.GuestAgentCommand)) *gav1.GuestAgentCommand {
	out := &gav1.GuestAgentCommand{}
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(cmd), out)).To(Succeed())
		cond(g, out)
	}).WithTimeout(pollTimeout).WithPolling(pollInterval).Should(Succeed())
	return out
}

// agentdFinish claims the command (Running) and then finishes it as agentd of node does, with
// two status updates; it returns the error of the first write that failed.
func agentdFinish(ctx context.Context, node string, cmd *gav1.GuestAgentCommand, phase gav1.CommandPhase) error {
	c := tenancy.agentd[node]
	if cmd.Status.Phase != gav1.PhaseRunning {
		now := metav1.Now()
		cmd.Status.Phase, cmd.Status.Reason, cmd.Status.Message = gav1.PhaseRunning, gav1.ReasonRunning, "claimed"
		cmd.Status.ClaimedBy, cmd.Status.StartTime = node+"/test", &now
		if err := c.Status().Update(ctx, cmd); err != nil {
			return fmt.Errorf("claiming: %w", err)
		}
	}
	now := metav1.Now()
	cmd.Status.Phase, cmd.Status.Reason, cmd.Status.Message = phase, gav1.ReasonCompleted, "done"
	cmd.Status.CompletionTime = &now
	cond := metav1.ConditionTrue
	if phase == gav1.PhaseFailed {
		cond = metav1.ConditionFalse
	}
	for i := range cmd.Status.Conditions {
		if cmd.Status.Conditions[i].Type == gav1.ConditionSucceeded {
			cmd.Status.Conditions[i].Status, cmd.Status.Conditions[i].Reason = cond, gav1.ReasonCompleted
			cmd.Status.Conditions[i].LastTransitionTime = now
		}
	}
	if err := c.Status().Update(ctx, cmd); err != nil {
		return fmt.Errorf("writing the outcome: %w", err)
	}
	return nil
}

// reportedEvents counts the Events with reason about the command (series included).
func reportedEvents(g Gomega, name, reason string) int {
	var list eventsv1.EventList
	g.Expect(env.Client.List(context.Background(), &list, client.InNamespace(tenantNS))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Kind == "GuestAgentCommand" && e.Regarding.Name == name && e.Reason == reason {
			n++
			if e.Series != nil && e.Series.Count > 1 {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

// commandsTotal reads guestagent_command_total{action,result} from the controller's registry.
func commandsTotal(g Gomega, action gav1.Action, result string) float64 {
	v, err := testenv.CounterValue("guestagent_command_total", map[string]string{"action": string(action), "result": result})
	g.Expect(err).NotTo(HaveOccurred())
	return v
}

// TestTenantCannotHideOrRepeatOutcomes: the marker that an outcome was reported is out of the
// tenant's reach. A tenant who pre-sets or removes the former marker annotation neither hides
// the outcome's Event and metrics nor has them reported again, and cannot write the status field
// that replaced it; agentd cannot write it either.
func TestTenantCannotHideOrRepeatOutcomes(t *testing.T) {
	startTenancy(t)
	g := NewWithT(t)
	ctx := t.Context()
	tenantStatus(t, "vm-outcome", "node-a")
	before := commandsTotal(g, gav1.ActionPing, controllers.ResultSucceeded)

	cmd := tenantCommand(t, g, "ping-outcome", "vm-outcome", gav1.ActionPing)
	sched := waitCommand(g, cmd, func(g Gomega, c *gav1.GuestAgentCommand) {
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseScheduled))
	})
	// The tenant marks the outcome as already reported before it exists.
	g.Expect(tenancy.tenant.Patch(ctx, cmd, client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"guestagent.io/outcome-reported":"Succeeded"}}}`)))).To(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cmd), sched)).To(Succeed())
	g.Expect(agentdFinish(ctx, "node-a", sched, gav1.PhaseSucceeded)).To(Succeed())

	waitCommand(g, cmd, func(g Gomega, c *gav1.GuestAgentCommand) { g.Expect(c.Status.OutcomeReported).To(BeTrue()) })
	g.Eventually(func(g Gomega) {
		g.Expect(reportedEvents(g, cmd.Name, string(gav1.PhaseSucceeded))).To(Equal(1))
	}).WithTimeout(pollTimeout).WithPolling(pollInterval).Should(Succeed())
	g.Expect(commandsTotal(g, gav1.ActionPing, controllers.ResultSucceeded)).To(Equal(before + 1))

	// The tenant can neither unset the marker nor remove it through the annotation.
	err := tenancy.tenant.Status().Patch(ctx, cmd, client.RawPatch("application/merge-patch+json",
		[]byte(`{"status":{"outcomeReported":false}}`)))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "tenant writing the status: %v", err)
	for range 3 {
		g.Expect(tenancy.tenant.Patch(ctx, cmd, client.RawPatch("application/merge-patch+json",
			[]byte(`{"metadata":{"annotations":{"guestagent.io/outcome-reported":null,"touch":"`+time.Now().String()+`"}}}`)))).To(Succeed())
	}
	// Nor can agentd (the admission policy), nor anyone (the CRD: never unset).
	done := &gav1.GuestAgentCommand{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cmd), done)).To(Succeed())
	done.Status.OutcomeReported = false
	g.Expect(tenancy.agentd["node-a"].Status().Update(ctx, done)).NotTo(Succeed())
	g.Expect(apierrors.IsInvalid(env.Client.Status().Update(ctx, done))).To(BeTrue())

	g.Consistently(func(g Gomega) {
		g.Expect(reportedEvents(g, cmd.Name, string(gav1.PhaseSucceeded))).To(Equal(1))
		g.Expect(commandsTotal(g, gav1.ActionPing, controllers.ResultSucceeded)).To(Equal(before + 1))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// TestTenantCannotMoveClaimedCommand: a tenant relabelling its Running command (the label agentd
// once selected by) changes nothing: agentd still writes the outcome. The binding is
// status.nodeName, which the tenant cannot write and nobody can change once claimed.
func TestTenantCannotMoveClaimedCommand(t *testing.T) {
	startTenancy(t)
	g := NewWithT(t)
	ctx := t.Context()
	tenantStatus(t, "vm-move", "node-a")
	cmd := tenantCommand(t, g, "reboot-move", "vm-move", gav1.ActionPing)
	sched := waitCommand(g, cmd, func(g Gomega, c *gav1.GuestAgentCommand) {
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseScheduled))
		g.Expect(c.Status.NodeName).To(Equal("node-a"))
	})
	now := metav1.Now()
	sched.Status.Phase, sched.Status.Reason, sched.Status.ClaimedBy, sched.Status.StartTime = gav1.PhaseRunning, gav1.ReasonRunning, "node-a/test", &now
	g.Expect(tenancy.agentd["node-a"].Status().Update(ctx, sched)).To(Succeed())

	// The tenant relabels the Running command for another node.
	g.Expect(tenancy.tenant.Patch(ctx, cmd, client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"guestagent.io/node":"node-b"}}}`)))).To(Succeed())
	// It cannot move the binding itself, and neither can anyone else once claimed.
	err := tenancy.tenant.Status().Patch(ctx, cmd, client.RawPatch("application/merge-patch+json",
		[]byte(`{"status":{"nodeName":"node-b"}}`)))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "tenant writing status.nodeName: %v", err)
	moved := &gav1.GuestAgentCommand{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cmd), moved)).To(Succeed())
	moved.Status.NodeName = "node-b"
	err = env.Client.Status().Update(ctx, moved)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "moving a claimed command: %v", err)

	// node-b's agentd cannot take it; node-a's agentd writes the outcome.
	running := &gav1.GuestAgentCommand{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cmd), running)).To(Succeed())
	g.Expect(agentdFinish(ctx, "node-b", running.DeepCopy(), gav1.PhaseFailed)).NotTo(Succeed())
	g.Expect(agentdFinish(ctx, "node-a", running, gav1.PhaseSucceeded)).To(Succeed())
	waitCommand(g, cmd, func(g Gomega, c *gav1.GuestAgentCommand) {
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseSucceeded))
		g.Expect(c.Status.NodeName).To(Equal("node-a"))
	})
}

// TestCompromisedNodeCannotTakeOverGuests: with its node-bound token, agentd of node-a cannot
// take over a GuestAgentStatus of node-b (relabel it, rewrite spec.nodeName) while node-b has not
// released it, so it cannot draw node-b's pending commands to itself, fake their outcomes or
// delete the status. Once node-b released the object (the marker agentd writes when the domain
// migrated away), node-a adopts it and the controller moves the pending command along; node-b
// cannot take it back on the strength of its old marker.
func TestCompromisedNodeCannotTakeOverGuests(t *testing.T) {
	startTenancy(t)
	g := NewWithT(t)
	ctx := t.Context()
	const policy = "t-agentd-node-restriction"
	nodeA, nodeB := tenancy.agentd["node-a"], tenancy.agentd["node-b"]
	gas := tenantStatus(t, "vm-hijack-target", "node-b")
	cmd := tenantCommand(t, g, "ping-hijack", gas.Name, gav1.ActionPing)
	waitCommand(g, cmd, func(g Gomega, c *gav1.GuestAgentCommand) {
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseScheduled))
		g.Expect(c.Status.NodeName).To(Equal("node-b"))
	})
	relabel := func(c client.Client, node string) error {
		o := fresh(ctx, t, gas)
		o.Labels[gav1.LabelNode], o.Spec.NodeName = node, node
		return c.Update(ctx, o)
	}

	err := relabel(nodeA, "node-a")
	g.Expect(isDeniedBy(err, policy)).To(BeTrue(), "node-a relabelling node-b's status: %v", err)
	err = nodeA.Delete(ctx, fresh(ctx, t, gas))
	g.Expect(isDeniedBy(err, policy)).To(BeTrue(), "node-a deleting node-b's status: %v", err)
	// Nor can node-a forge node-b's release marker.
	err = release(ctx, nodeA, gas, "node-b")
	g.Expect(isDeniedBy(err, policy)).To(BeTrue(), "node-a writing node-b's release marker: %v", err)
	g.Consistently(func(g Gomega) {
		c := &gav1.GuestAgentCommand{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cmd), c)).To(Succeed())
		g.Expect(c.Status.NodeName).To(Equal("node-b"))
		g.Expect(fresh(ctx, t, gas).Spec.NodeName).To(Equal("node-b"))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// node-b's agentd releases the object (its domain migrated to node-a): node-a adopts it.
	g.Expect(release(ctx, nodeB, gas, "node-b")).To(Succeed())
	g.Expect(relabel(nodeA, "node-a")).To(Succeed())
	waitCommand(g, cmd, func(g Gomega, c *gav1.GuestAgentCommand) {
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseScheduled))
		g.Expect(c.Status.NodeName).To(Equal("node-a"))
	})
	// The marker stays as the record of the hand-over; it no longer lets node-b take the object.
	g.Expect(fresh(ctx, t, gas).Status.Release).To(HaveField("NodeName", "node-b"))
	err = relabel(nodeB, "node-b")
	g.Expect(isDeniedBy(err, policy)).To(BeTrue(), "node-b taking back a status node-a adopted: %v", err)
}

// TestInvalidSpecIsNotAnOperatorError: a tenant's invalid command ends Failed/InvalidSpec with a
// Warning Event, and the manager logs nothing at error level about it.
func TestInvalidSpecIsNotAnOperatorError(t *testing.T) {
	startTenancy(t)
	g := NewWithT(t)
	ctx := t.Context()
	tenantStatus(t, "vm-invalid", "node-a")
	cmd := &gav1.GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Name: "hook-over-qga", Namespace: tenantNS},
		Spec: gav1.GuestAgentCommandSpec{Target: "vm-invalid", Action: gav1.ActionHook, Agent: gav1.AgentSelectQemu,
			Hook: &gav1.HookParams{Name: gav1.HookBeforeMigration}},
	}
	g.Expect(tenancy.tenant.Create(ctx, cmd)).To(Succeed())
	waitCommand(g, cmd, func(g Gomega, c *gav1.GuestAgentCommand) {
		g.Expect(c.Status.Phase).To(Equal(gav1.PhaseFailed))
		g.Expect(c.Status.Reason).To(Equal(gav1.ReasonInvalidSpec))
		g.Expect(c.Status.OutcomeReported).To(BeTrue())
	})
	g.Eventually(func(g Gomega) {
		g.Expect(reportedEvents(g, cmd.Name, string(gav1.PhaseFailed))).To(Equal(1))
	}).WithTimeout(pollTimeout).WithPolling(pollInterval).Should(Succeed())
	g.Consistently(func() []string { return tenancy.logs.Lines(cmd.Name) }).
		WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(BeEmpty())
}

// TestTrimmedRBAC: the manager elects a leader with a Role that grants only get, create and
// update on Leases, and agentd's role grants only update on command statuses (what the other
// tests exercise through the admission policy).
func TestTrimmedRBAC(t *testing.T) {
	startTenancy(t)
	g := NewWithT(t)
	var le rbacv1.Role
	g.Expect(yaml.Unmarshal(readFile(t, "config/rbac/leader_election_role.yaml"), &le)).To(Succeed())
	for _, r := range le.Rules {
		if slices.Contains(r.Resources, "leases") {
			g.Expect(r.Verbs).To(ConsistOf("get", "create", "update"))
		}
	}
	for _, r := range clusterRoleFromFile(t, "config/agentd/rbac/role.yaml").Rules {
		if slices.Contains(r.Resources, "guestagentcommands/status") {
			g.Expect(r.Verbs).To(ConsistOf("update"), "agentd's verbs on %v", r.Resources)
		}
	}
	for _, r := range clusterRoleFromFile(t, "config/rbac/role.yaml").Rules {
		if slices.Contains(r.Resources, "guestagentcommands") {
			g.Expect(r.Verbs).NotTo(ContainElement("patch"), "the manager writes no command metadata")
		}
	}
	g.Eventually(func(g Gomega) {
		var lease coordinationv1.Lease
		g.Expect(env.Client.Get(t.Context(), client.ObjectKey{Namespace: tenancySys, Name: "guestagent-controller.guestagent.io"}, &lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
	}).WithTimeout(pollTimeout).WithPolling(pollInterval).Should(Succeed())
}
