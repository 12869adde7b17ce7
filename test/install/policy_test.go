package install

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// policyNS is the namespace of the admission policy tests (agentd's service accounts and the
// objects they write).
const policyNS = "policy-test"

// optInNS opted in to agentd's statuses (label guestagent.io/statuses=enabled); closedNS did not.
const (
	optInNS  = "policy-opt-in"
	closedNS = "policy-closed"
)

// nodeNameExtra is the user extra the API server sets from a node-bound service account token.
const nodeNameExtra = "authentication.kubernetes.io/node-name"

// TestAdmissionPolicyAPIEnabled checks that the API server serves
// admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies (GA and on by default since
// Kubernetes 1.30), which the node restriction relies on.
func TestAdmissionPolicyAPIEnabled(t *testing.T) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dc.ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range res.APIResources {
		found[r.Kind] = true
	}
	for _, k := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if !found[k] {
			t.Errorf("the API server does not serve %s in admissionregistration.k8s.io/v1", k)
		}
	}
}

// TestAgentdNodeRestriction installs the node restriction policy twice, once as config/policy
// renders it (with the ServiceAccount substitution config/default makes) and once as the Helm
// chart renders it, each for its own agentd ServiceAccount, and acts as that agentd through
// impersonation.
func TestAgentdNodeRestriction(t *testing.T) {
	ctx := t.Context()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: policyNS}})
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: optInNS, Labels: map[string]string{"guestagent.io/statuses": "enabled"}}})
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: closedNS}})

	t.Run("kustomize", func(t *testing.T) {
		sa := "agentd-k"
		objs := decodeAll(t, run(t, "kustomize", "build", "config/policy"))
		for _, o := range objs {
			// Distinct names, so that both policies can be installed at once.
			o.SetName("k-" + o.GetName())
			if o.GetKind() == "ValidatingAdmissionPolicy" {
				setAgentdUser(t, o, policyNS, sa)
			} else {
				if err := unstructured.SetNestedField(o.Object, "k-agentd-node-restriction", "spec", "policyName"); err != nil {
					t.Fatal(err)
				}
			}
		}
		testNodeRestriction(ctx, t, sa, objs)
	})
	t.Run("helm", func(t *testing.T) {
		sa := "agentd-h"
		objs := helmTemplate(t, policyNS, "--show-only", "templates/admission-policy.yaml",
			"--set", "serviceAccount.agentd.name="+sa)
		testNodeRestriction(ctx, t, sa, objs)
	})
}

// setAgentdUser fills in the agentd ServiceAccount the way config/default's replacements do: the
// match condition is "... == 'system:serviceaccount:' + '<ns>' + ':' + '<name>'" and the quoted
// parts 3 and 7 (split at single quotes) are the namespace and the name.
func setAgentdUser(t *testing.T, policy *unstructured.Unstructured, ns, sa string) {
	t.Helper()
	conds, _, _ := unstructured.NestedSlice(policy.Object, "spec", "matchConditions")
	for i, c := range conds {
		m := c.(map[string]any)
		if m["name"] != "is-agentd" {
			continue
		}
		parts := strings.Split(m["expression"].(string), "'")
		if len(parts) < 8 {
			t.Fatalf("unexpected is-agentd expression %q", m["expression"])
		}
		parts[3], parts[7] = ns, sa
		m["expression"] = strings.Join(parts, "'")
		conds[i] = m
		if err := unstructured.SetNestedSlice(policy.Object, conds, "spec", "matchConditions"); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no is-agentd match condition in the policy")
}

// testNodeRestriction installs the policy objects for agentd ServiceAccount sa in policyNS and
// checks what that agentd may and may not do.
func testNodeRestriction(ctx context.Context, t *testing.T, sa string, policy []*unstructured.Unstructured) {
	if len(policy) != 2 {
		t.Fatalf("want a policy and a binding, got %d objects", len(policy))
	}
	var policyName string
	for _, o := range policy {
		if o.GetKind() == "ValidatingAdmissionPolicy" {
			policyName = o.GetName()
		}
		if err := apply(ctx, o); err != nil {
			t.Fatalf("installing %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	user := fmt.Sprintf("system:serviceaccount:%s:%s", policyNS, sa)
	grantAgentdRole(t, sa)

	agentdA := impersonate(t, user, "node-a")  // agentd on node-a
	agentdB := impersonate(t, user, "node-b")  // agentd on node-b
	noNode := impersonate(t, user, "")         // agentd's account, token not bound to a node
	other := impersonate(t, user+"-other", "") // another account with the same RBAC
	grantAgentdRole(t, sa+"-other")

	// Objects owned by node-a and node-b, created by an administrator.
	p := "p-" + sa + "-"
	ownA := gas(p+"own-a", "node-a", "node-a")
	ofB := gas(p+"of-b", "node-b", "node-b")
	toRelabel := gas(p+"relabel", "node-a", "node-a")
	migrating := gas(p+"migrating", "node-b", "node-b")
	staleRelease := gas(p+"stale-release", "node-b", "node-b")
	for _, o := range []client.Object{ofB, toRelabel, migrating, staleRelease} {
		mustCreate(t, o)
	}
	// Commands are bound to a node by status.nodeName (the controller's); the label is the
	// tenant's and means nothing to the policy.
	cmdA, cmdB := command(ctx, t, p+"cmd-a", "node-a", "node-a"), command(ctx, t, p+"cmd-b", "node-b", "node-b")
	relabelled := command(ctx, t, p+"cmd-relabelled", "node-b", "node-a")
	spoofed := command(ctx, t, p+"cmd-spoofed", "node-a", "node-b")
	toMove := command(ctx, t, p+"cmd-move", "node-a", "node-a")
	toFinish := command(ctx, t, p+"cmd-finish", "node-a", "node-a")

	// The binding takes effect asynchronously: wait until a request the policy must deny is
	// denied (as a dry run, so nothing is written while the policy is not active yet).
	NewWithT(t).Eventually(func() error {
		err := noNode.Create(ctx, gas(p+"probe", "node-a", "node-a"), client.DryRunAll)
		if isDeniedBy(err, policyName) {
			return nil
		}
		return fmt.Errorf("probe not denied by the policy yet: %v", err)
	}).WithTimeout(pollTimeout).WithPolling(pollInterval).Should(Succeed(), "policy "+policyName+" active")

	allowed := []struct {
		name string
		do   func() error
	}{
		{"create own-node status", func() error { return agentdA.Create(ctx, ownA) }},
		{"update own-node status", func() error {
			return retryOnConflict(ctx, agentdA, ownA, func() { ownA.Spec.DomainName = "renamed" }, agentdA.Update)
		}},
		{"status update own-node status", func() error {
			return retryOnConflict(ctx, agentdA, ownA, func() { ownA.Status.Hostname = "web-1" },
				func(ctx context.Context, o client.Object, _ ...client.UpdateOption) error {
					return agentdA.Status().Update(ctx, o)
				})
		}},
		{"status merge patch own-node status", func() error {
			patch := client.RawPatch("application/merge-patch+json", []byte(`{"status":{"fqdn":"web-1.example"}}`))
			return agentdA.Status().Patch(ctx, ownA, patch)
		}},
		{"node-b releases its own status", func() error { return release(ctx, agentdB, migrating, "node-b") }},
		{"adopt a status node-b released", func() error {
			return retryOnConflict(ctx, agentdA, migrating, func() {
				migrating.Labels[gav1.LabelNode] = "node-a"
				migrating.Spec.NodeName = "node-a"
			}, agentdA.Update)
		}},
		{"status update own-node command", func() error {
			return retryOnConflict(ctx, agentdA, cmdA, func() { cmdA.Status.Message = "claimed" },
				func(ctx context.Context, o client.Object, _ ...client.UpdateOption) error {
					return agentdA.Status().Update(ctx, o)
				})
		}},
		{"status update own-node command relabelled for another node by its tenant", func() error {
			return retryOnConflict(ctx, agentdA, relabelled, func() { relabelled.Status.Message = "claimed" },
				func(ctx context.Context, o client.Object, _ ...client.UpdateOption) error {
					return agentdA.Status().Update(ctx, o)
				})
		}},
		{"create own-node status in a namespace that opted in", func() error {
			o := gas(p+"opted-in", "node-a", "node-a")
			o.Namespace = optInNS
			return agentdA.Create(ctx, o)
		}},
		{"delete own-node status", func() error { return agentdA.Delete(ctx, ownA) }},
		{"another account is unaffected", func() error {
			return other.Create(ctx, gas(p+"by-other", "node-b", "node-b"))
		}},
	}
	for _, c := range allowed {
		if err := c.do(); err != nil {
			t.Errorf("allowed: %s: %v", c.name, err)
		}
	}

	denied := []struct {
		name string
		do   func() error
	}{
		{"create other-node status", func() error { return agentdA.Create(ctx, gas(p+"new-b", "node-b", "node-b")) }},
		{"create status labelled for own node with another spec.nodeName", func() error {
			return agentdA.Create(ctx, gas(p+"mixed", "node-a", "node-b"))
		}},
		{"update other-node status", func() error {
			o := fresh(ctx, t, ofB)
			o.Spec.DomainName = "hijacked"
			return agentdA.Update(ctx, o)
		}},
		{"status update other-node status", func() error {
			o := fresh(ctx, t, ofB)
			o.Status.Hostname = "hijacked"
			return agentdA.Status().Update(ctx, o)
		}},
		{"relabel own-node status to another node", func() error {
			o := fresh(ctx, t, toRelabel)
			o.Labels[gav1.LabelNode] = "node-b"
			o.Spec.NodeName = "node-b"
			return agentdA.Update(ctx, o)
		}},
		{"relabel own-node status label only", func() error {
			o := fresh(ctx, t, toRelabel)
			o.Labels[gav1.LabelNode] = "node-b"
			return agentdA.Update(ctx, o)
		}},
		{"delete other-node status", func() error { return agentdA.Delete(ctx, fresh(ctx, t, ofB)) }},
		{"take over a status node-b did not release", func() error {
			o := fresh(ctx, t, ofB)
			o.Labels[gav1.LabelNode], o.Spec.NodeName = "node-a", "node-a"
			return agentdA.Update(ctx, o)
		}},
		{"take over a status whose release names another node than its own", func() error {
			o := fresh(ctx, t, staleRelease)
			o.Labels[gav1.LabelNode], o.Spec.NodeName = "node-a", "node-a"
			return agentdA.Update(ctx, o)
		}},
		{"write another node's release marker", func() error { return release(ctx, agentdA, ofB, "node-b") }},
		{"status update other-node command", func() error {
			o := fresh(ctx, t, cmdB)
			o.Status.Message = "claimed"
			return agentdA.Status().Update(ctx, o)
		}},
		{"status update of a command labelled for own node but scheduled to another", func() error {
			o := fresh(ctx, t, spoofed)
			o.Status.Message = "claimed"
			return agentdA.Status().Update(ctx, o)
		}},
		{"move own-node command to another node", func() error {
			o := fresh(ctx, t, toMove)
			o.Status.NodeName = "node-b"
			return agentdA.Status().Update(ctx, o)
		}},
		{"mark own-node command's outcome as reported", func() error {
			o := fresh(ctx, t, toFinish)
			o.Status.Phase, o.Status.Reason, o.Status.OutcomeReported = gav1.PhaseSucceeded, gav1.ReasonCompleted, true
			return agentdA.Status().Update(ctx, o)
		}},
		{"create own-node status in a namespace that did not opt in", func() error {
			o := gas(p+"closed", "node-a", "node-a")
			o.Namespace = closedNS
			return agentdA.Create(ctx, o)
		}},
		{"create own-node status in kube-system", func() error {
			o := gas(p+"kube-system", "node-a", "node-a")
			o.Namespace = metav1.NamespaceSystem
			return agentdA.Create(ctx, o)
		}},
		{"no node: create status", func() error { return noNode.Create(ctx, gas(p+"nonode", "node-a", "node-a")) }},
		{"no node: update status", func() error {
			o := fresh(ctx, t, toRelabel)
			o.Spec.DomainName = "x"
			return noNode.Update(ctx, o)
		}},
		{"no node: delete status", func() error { return noNode.Delete(ctx, fresh(ctx, t, toRelabel)) }},
		{"no node: status update command", func() error {
			o := fresh(ctx, t, cmdA)
			o.Status.Message = "again"
			return noNode.Status().Update(ctx, o)
		}},
	}
	// An administrator's marker naming a node that is not the object's: no release.
	if err := release(ctx, env.Client, staleRelease, "node-c"); err != nil {
		t.Fatal(err)
	}
	for _, c := range denied {
		if err := c.do(); !isDeniedBy(err, policyName) {
			t.Errorf("denied: %s: want a denial by %s, got %v", c.name, policyName, err)
		}
	}
}

// release writes the release marker naming node on o, as agentd does (server-side apply of
// status.release with agentd's release field manager), with client c.
func release(ctx context.Context, c client.Client, o *gav1.GuestAgentStatus, node string) error {
	body := fmt.Sprintf(`{"apiVersion":%q,"kind":"GuestAgentStatus","metadata":{"name":%q,"namespace":%q},`+
		`"status":{"release":{"nodeName":%q,"time":"2026-01-01T00:00:00Z"}}}`, gav1.GroupVersion.String(), o.Name, o.Namespace, node)
	target := &gav1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace}}
	return c.Status().Patch(ctx, target, client.RawPatch(types.ApplyPatchType, []byte(body)),
		client.FieldOwner(gav1.FieldOwnerAgentdRelease), client.ForceOwnership)
}

// isDeniedBy reports whether err is a Forbidden error from the named admission policy (and not,
// say, from RBAC).
func isDeniedBy(err error, policy string) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policy+"'")
}

// gas returns a GuestAgentStatus in policyNS labelled for labelNode with spec.nodeName specNode.
func gas(name, labelNode, specNode string) *gav1.GuestAgentStatus {
	return &gav1.GuestAgentStatus{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: policyNS, Labels: map[string]string{gav1.LabelNode: labelNode}},
		Spec: gav1.GuestAgentStatusSpec{
			DomainName: name,
			DomainUUID: "0f1c2a9e-0000-4000-8000-000000000001",
			NodeName:   specNode,
		},
	}
}

// command creates, as an administrator, a Ping GuestAgentCommand in policyNS labelled for
// labelNode and scheduled (status.nodeName, as the controller writes it) to node.
func command(ctx context.Context, t *testing.T, name, labelNode, node string) *gav1.GuestAgentCommand {
	t.Helper()
	cmd := &gav1.GuestAgentCommand{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: policyNS, Labels: map[string]string{gav1.LabelNode: labelNode}},
		Spec:       gav1.GuestAgentCommandSpec{Target: "some-guest", Action: gav1.ActionPing},
	}
	mustCreate(t, cmd)
	// A controller manager of another test may write the status concurrently.
	if err := retryOnConflict(ctx, env.Client, cmd, func() { cmd.Status.Phase, cmd.Status.NodeName = gav1.PhaseScheduled, node },
		func(ctx context.Context, o client.Object, _ ...client.UpdateOption) error {
			return env.Client.Status().Update(ctx, o)
		}); err != nil {
		t.Fatalf("scheduling command %s: %v", name, err)
	}
	return cmd
}

// fresh re-reads o as the administrator.
func fresh[T client.Object](ctx context.Context, t *testing.T, o T) T {
	t.Helper()
	c := o.DeepCopyObject().(T)
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// retryOnConflict reads o with c, mutates it and writes it with write, again on a conflict.
func retryOnConflict(ctx context.Context, c client.Client, o client.Object, mutate func(),
	write func(context.Context, client.Object, ...client.UpdateOption) error) error {
	for range 5 {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			return err
		}
		mutate()
		err := write(ctx, o)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("conflict after 5 attempts")
}

// impersonate returns a client acting as the service account user of policyNS, with the
// node-name extra a node-bound token carries when node is not empty.
func impersonate(t *testing.T, user, node string) client.Client {
	t.Helper()
	return impersonateIn(t, policyNS, user, node)
}

// impersonateIn returns a client acting as the service account user of namespace ns, with the
// node-name extra a node-bound token carries when node is not empty.
func impersonateIn(t *testing.T, ns, user, node string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: user,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	if node != "" {
		cfg.Impersonate.Extra = map[string][]string{nodeNameExtra: {node}}
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// grantAgentdRole creates ServiceAccount sa in policyNS and binds it to agentd's generated
// ClusterRole (config/agentd/rbac/role.yaml).
func grantAgentdRole(t *testing.T, sa string) {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(readFile(t, "config/agentd/rbac/role.yaml"), &role); err != nil {
		t.Fatal(err)
	}
	role.Name = "test-" + sa
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: policyNS}})
	mustCreate(t, &role)
	mustCreate(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-" + sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: policyNS}},
	})
}

// mustCreate creates o as the administrator; an existing object is fine.
func mustCreate(t *testing.T, o client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
}
